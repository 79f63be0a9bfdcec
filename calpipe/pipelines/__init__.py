"""calpipe's pipelines (each imported on first use, with only the steps it runs)."""

from calpipe import _lazy

_MODULES = {"ExposurePipeline": "exposure", "TrainingIngestPipeline": "training_ingest"}

__all__ = sorted(_MODULES)

__getattr__, __dir__ = _lazy.exports(__name__, _MODULES)
