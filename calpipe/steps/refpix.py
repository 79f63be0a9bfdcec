"""refpix: remove bias drifts tracked by the reference pixels on the detector border."""

from calpipe.detector import BORDER
from calpipe.kernels.refpix import correct_refpix, refpix_variance
from calpipe.step import CalStep


class RefPixStep(CalStep):
    """Subtract per-channel, per-resultant bias drifts measured on the border pixels.

    Records in ``refpix_variance`` the variance the estimates add per read (see
    docs/steps/refpix.md), for ramp fitting to add to the read noise.
    """

    class_alias = "refpix"
    spec = """
    nchannels = integer(default=32, min=1)   # Amplifier channels across the detector
    """

    def process(self, input):
        model = self.open_for_update(input)
        channel, row = refpix_variance(model.data, model.meta.exposure.read_pattern, border=BORDER,
                                       nchannels=self.nchannels)
        correct_refpix(model.data, border=BORDER, nchannels=self.nchannels)
        model.refpix_variance = {"channel": channel.astype("float32"), "row": row.astype("float32")}
        return model
