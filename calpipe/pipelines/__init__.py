"""calpipe's pipelines."""

from .exposure import ExposurePipeline

__all__ = ["ExposurePipeline"]
