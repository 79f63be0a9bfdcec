"""calpipe's pipelines."""

from .exposure import ExposurePipeline
from .training_ingest import TrainingIngestPipeline

__all__ = ["ExposurePipeline", "TrainingIngestPipeline"]
