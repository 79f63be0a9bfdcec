"""calpipe's steps: each reads its parameters and references, calls a kernel, records what it did."""

from .dark_current import DarkCurrentStep
from .dq_init import DQInitStep
from .flat_field import FlatFieldStep
from .linearity import LinearityStep
from .photom import PhotomStep
from .ramp_fit import RampFitStep
from .refpix import RefPixStep
from .saturation import SaturationStep

__all__ = [
    "DQInitStep",
    "DarkCurrentStep",
    "FlatFieldStep",
    "LinearityStep",
    "PhotomStep",
    "RampFitStep",
    "RefPixStep",
    "SaturationStep",
]
