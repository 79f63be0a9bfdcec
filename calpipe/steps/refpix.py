"""refpix: remove bias drifts tracked by the reference pixels on the detector border."""

import numpy as np

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
        model.refpix_variance = {"channel": channel.astype(np.float32), "row": row.astype(np.float32)}
        channel, row = correct_refpix(model.data, border=BORDER, nchannels=self.nchannels)
        # what was subtracted, for references made for counts with the bias in (linearity)
        model.refpix_bias = {"channel": channel.astype(np.float32), "row": row.astype(np.float32)}
        return model
