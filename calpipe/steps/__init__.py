"""calpipe's steps: each reads its parameters and references, calls a kernel, records what it did.

Each class is imported on first use, so that running one pipeline loads only its own steps
(the training steps' database libraries stay out of a calibration run).
"""

from calpipe import _lazy

_MODULES = {
    "AssignWcsStep": "assign_wcs",
    "DarkCurrentStep": "dark_current",
    "DarkDecayStep": "dark_decay",
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
    "Wfi18TransientStep": "wfi18_transient",
}

__all__ = sorted(_MODULES)

__getattr__, __dir__ = _lazy.exports(__name__, _MODULES)
