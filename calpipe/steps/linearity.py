"""linearity: map measured counts to linear counts with a per-pixel polynomial."""

import logging

import numpy as np

from calpipe.kernels.linearity import correct_linearity
from calpipe.step import CalStep

from ._common import check_shape

log = logging.getLogger(__name__)


class LinearityStep(CalStep):
    """Correct non-linearity; pixels with NaN or zero coefficients get NO_LIN_CORR."""

    class_alias = "linearity"
    reference_file_types = ["linearity"]

    def process(self, input):
        model = self.open_for_update(input)
        ref = self.open_reference(model, "linearity")
        check_shape(ref.coeffs[0], "coeffs", model.data.shape[1:], ref.meta.filename)
        bias = model.tree.get("refpix_bias") if ref.meta.get("input_counts") == "raw" else None
        if bias is not None:
            # the polynomial was made for counts with the bias level in: put back what refpix took
            log.info("Linearity applied to raw counts (bias restored for it)")
            _shift_bias(model.data, bias, +1)
        correct_linearity(model.data, model.groupdq, ref.coeffs, model.pixeldq,
                          model.meta.exposure.read_pattern, coeffs_dq=ref.dq)
        if bias is not None:
            _shift_bias(model.data, bias, -1)
        ref.close()
        return model


def _shift_bias(data, bias, sign):
    """Add (``sign`` +1) or remove (-1) the refpix bias ``channel[i, x // width] + row[i, y]``."""
    channel, row = np.asarray(bias["channel"]), np.asarray(bias["row"])
    width = data.shape[2] // channel.shape[1]
    for i in range(data.shape[0]):
        level = np.repeat(channel[i], width)[None, :] + row[i][:, None]
        data[i] += np.float32(sign) * level.astype(np.float32)
