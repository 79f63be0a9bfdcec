"""Entry points for stpipe and asdf. Kept free of step imports so `strun` starts fast."""

from pathlib import Path

# (class path, alias, is_pipeline)
STEPS = [
    ("calpipe.steps.DQInitStep", "dq_init", False),
    ("calpipe.steps.SaturationStep", "saturation", False),
    ("calpipe.steps.RefPixStep", "refpix", False),
    ("calpipe.steps.LinearityStep", "linearity", False),
    ("calpipe.steps.RampFitStep", "ramp_fit", False),
    ("calpipe.steps.DarkCurrentStep", "dark_current", False),
    ("calpipe.steps.FlatFieldStep", "flat_field", False),
    ("calpipe.steps.PhotomStep", "photom", False),
    ("calpipe.steps.AssignWcsStep", "assign_wcs", False),
    ("calpipe.steps.SourceCatalogStep", "source_catalog", False),
    ("calpipe.steps.TweakRegStep", "tweakreg", False),
    ("calpipe.steps.ScrubStep", "scrub", False),
    ("calpipe.steps.IngestStep", "ingest", False),
    ("calpipe.pipelines.ExposurePipeline", "exposure_pipeline", True),
    ("calpipe.pipelines.TrainingIngestPipeline", "training_ingest", True),
]


def get_steps():
    return list(STEPS)


def get_resource_mappings():
    from asdf.resource import DirectoryResourceMapping

    schemas = Path(__file__).parent / "datamodels" / "schemas"
    return [DirectoryResourceMapping(schemas, "asdf://calpipe.org/schemas/", recursive=True)]
