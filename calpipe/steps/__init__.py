"""calpipe's steps: each reads its parameters and references, calls a kernel, records what it did."""

from .assign_wcs import AssignWcsStep
from .dark_current import DarkCurrentStep
from .dq_init import DQInitStep
from .flat_field import FlatFieldStep
from .ingest import IngestStep
from .linearity import LinearityStep
from .photom import PhotomStep
from .ramp_fit import RampFitStep
from .refpix import RefPixStep
from .saturation import SaturationStep
from .scrub import ScrubStep
from .source_catalog import SourceCatalogStep
from .tweakreg import TweakRegStep

__all__ = [
    "AssignWcsStep",
    "DQInitStep",
    "IngestStep",
    "ScrubStep",
    "SourceCatalogStep",
    "TweakRegStep",
    "DarkCurrentStep",
    "FlatFieldStep",
    "LinearityStep",
    "PhotomStep",
    "RampFitStep",
    "RefPixStep",
    "SaturationStep",
]
