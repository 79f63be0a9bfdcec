"""calpipe's pipelines (each imported on first use, with only the steps it runs)."""

import importlib

_MODULES = {"ExposurePipeline": "exposure", "TrainingIngestPipeline": "training_ingest"}

__all__ = sorted(_MODULES)


def __getattr__(name):
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)


def __dir__():
    return __all__
