"""TrainingIngestPipeline: scrub an association's members, ingest them with their cost."""

from calpipe.step import CalPipeline
from calpipe.steps.ingest import IngestStep
from calpipe.steps.scrub import ScrubStep


class TrainingIngestPipeline(CalPipeline):
    """scrub, then ingest (``strun training_ingest asn.json``)."""

    class_alias = "training_ingest"
    spec = """
    """
    step_defs = {"scrub": ScrubStep, "ingest": IngestStep}

    def process(self, input):
        scrubbed = self.scrub.run(input)
        return self.ingest.run(scrubbed)
