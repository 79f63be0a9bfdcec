"""The calpipe model classes, one per kind of file."""

import math
from datetime import datetime

import numpy as np

from .core import DataModel
from .products import DistortionRefModel, SegmentationModel, WcsModel


def _exposure_problems(model):
    """Exposure metadata that has the right types but cannot describe a real readout."""
    exposure = model.tree["meta"].get("exposure", {})
    data = model.tree.get("data")
    pattern = exposure.get("read_pattern")
    frame_time = exposure.get("frame_time")
    if frame_time is not None and not (isinstance(frame_time, (int, float))
                                       and math.isfinite(frame_time) and frame_time > 0):
        yield f"meta.exposure.frame_time is {frame_time!r}, expected a finite number of seconds > 0"
    if pattern is not None:
        last = 0
        for i, reads in enumerate(pattern):
            if not reads or reads[0] <= last or any(b <= a for a, b in zip(reads, reads[1:])):
                yield (f"meta.exposure.read_pattern[{i}] is {list(reads)!r}, expected read numbers "
                       ">= 1 increasing through the whole pattern")
                break
            last = reads[-1]
    if data is not None and pattern is not None and len(pattern) != data.shape[0]:
        yield (
            f"meta.exposure.read_pattern lists {len(pattern)} resultants "
            f"but data holds {data.shape[0]}"
        )
    if pattern is not None and exposure.get("nresultants") not in (None, len(pattern)):
        yield f"meta.exposure.nresultants is {exposure['nresultants']}, read_pattern has {len(pattern)}"
    start = exposure.get("start_time")
    if isinstance(start, str):
        try:
            datetime.fromisoformat(start)
        except ValueError:
            yield f"meta.exposure.start_time is {start!r}, expected an ISO time like 2027-06-01T00:00:00.000"


def _same_shape(model, names, shape, what):
    for name in names:
        array = model.tree.get(name)
        if array is not None and tuple(array.shape) != tuple(shape):
            yield f"{name} has shape {tuple(array.shape)}, expected {tuple(shape)} ({what})"


class RawModel(DataModel):
    """Raw exposure: uint16 resultants (nresultants, ny, nx), reference border included."""

    schema = "raw"

    def problems(self):
        yield from _exposure_problems(self)
        shape = self.data.shape
        yield from _same_shape(self, ["groupdq"], shape, "as data")
        yield from _same_shape(self, ["pixeldq"], shape[1:], "one value per pixel")


class RampModel(DataModel):
    """Resultants as float32 DN with group DQ (per resultant) and pixel DQ."""

    schema = "ramp"

    def problems(self):
        yield from _exposure_problems(self)
        shape = self.data.shape
        yield from _same_shape(self, ["groupdq"], shape, "as data")
        yield from _same_shape(self, ["pixeldq"], shape[1:], "one value per pixel")


def roman_output(meta, output_format):
    """Whether the image products of an exposure with metadata ``meta`` are written in the Roman
    formats: ``output_format`` roman, or auto (or unset) for a Roman input."""
    return output_format == "roman" or (output_format in (None, "auto") and "roman" in meta)


class ImageModel(DataModel):
    """Count-rate image in DN/s (rate or calibrated), science pixels only."""

    schema = "image"

    def write_to(self, path, name=None):
        """A Roman exposure's image is written as a Roman Level-2 image unless asked otherwise
        (``_output_format``: auto, calpipe or roman; steps set it from ``output_format``)."""
        if roman_output(self.tree["meta"], getattr(self, "_output_format", "auto")):
            from .roman import write_image

            write_image(self, path)
        else:
            super().write_to(path, name)

    def problems(self):
        names = ["dq", "err", "var_poisson", "var_rnoise", "var_flat"]
        yield from _same_shape(self, names, self.data.shape, "as data")


class _ReferenceModel(DataModel):
    reftype = None

    def problems(self):
        main = self.tree.get("data", self.tree.get("dq"))
        if main is not None:
            yield from _same_shape(self, ["data", "err", "dq"], main.shape, "as the main array")


class MaskRefModel(_ReferenceModel):
    schema, reftype = "mask_ref", "mask"


class SaturationRefModel(_ReferenceModel):
    schema, reftype = "saturation_ref", "saturation"


class LinearityRefModel(_ReferenceModel):
    schema, reftype = "linearity_ref", "linearity"

    def problems(self):
        yield from _same_shape(self, ["dq"], self.coeffs.shape[1:], "one value per pixel")


class DarkRefModel(_ReferenceModel):
    schema, reftype = "dark_ref", "dark"


class DarkDecaySignalRefModel(_ReferenceModel):
    schema, reftype = "darkdecaysignal_ref", "darkdecaysignal"


class IntegralNonlinearityRefModel(_ReferenceModel):
    schema, reftype = "integralnonlinearity_ref", "integralnonlinearity"

    def problems(self):
        nvalues = self.value.shape[0]
        if self.correction.shape[1] != nvalues:
            yield (f"correction: shape {self.correction.shape}, expected one row of {nvalues} values "
                   "per channel (as many as value)")
        if nvalues < 2 or np.any(np.diff(np.asarray(self.value, np.float64)) <= 0):
            yield "value: expected at least two counts, strictly increasing"


class GainRefModel(_ReferenceModel):
    schema, reftype = "gain_ref", "gain"


class ReadnoiseRefModel(_ReferenceModel):
    schema, reftype = "readnoise_ref", "readnoise"


class FlatRefModel(_ReferenceModel):
    schema, reftype = "flat_ref", "flat"


class PhotomRefModel(_ReferenceModel):
    schema, reftype = "photom_ref", "photom"


MODELS = {
    cls.__name__: cls
    for cls in [
        RawModel,
        RampModel,
        ImageModel,
        MaskRefModel,
        SaturationRefModel,
        LinearityRefModel,
        DarkRefModel,
        DarkDecaySignalRefModel,
        GainRefModel,
        ReadnoiseRefModel,
        FlatRefModel,
        PhotomRefModel,
        IntegralNonlinearityRefModel,
        DistortionRefModel,
        SegmentationModel,
        WcsModel,
    ]
}

REFERENCE_MODELS = {cls.reftype: cls for cls in MODELS.values() if getattr(cls, "reftype", None)}
