"""calpipe's steps: each reads its parameters and references, calls a kernel, records what it did.

Each class is imported on first use, so that running one pipeline loads only its own steps
(the training steps' database libraries stay out of a calibration run).
"""

import importlib

_MODULES = {
    "AssignWcsStep": "assign_wcs",
    "DarkCurrentStep": "dark_current",
    "DQInitStep": "dq_init",
    "FlatFieldStep": "flat_field",
    "IngestStep": "ingest",
    "LinearityStep": "linearity",
    "PhotomStep": "photom",
    "RampFitStep": "ramp_fit",
    "RefPixStep": "refpix",
    "SaturationStep": "saturation",
    "ScrubStep": "scrub",
    "SourceCatalogStep": "source_catalog",
    "TweakRegStep": "tweakreg",
}

__all__ = sorted(_MODULES)


def __getattr__(name):
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)


def __dir__():
    return __all__
