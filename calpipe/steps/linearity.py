"""linearity: map measured counts to linear counts with a per-pixel polynomial."""

import logging

import numpy as np

from calpipe.kernels.linearity import correct_integral_nonlinearity, correct_linearity
from calpipe.kernels.refpix import shift_bias
from calpipe.step import CalStep

from ._common import check_shape, optional_reference

log = logging.getLogger(__name__)


class LinearityStep(CalStep):
    """Correct the readout's integral non-linearity (where the store has an
    integralnonlinearity reference), then the detector's non-linearity; pixels with NaN or zero
    coefficients get NO_LIN_CORR."""

    class_alias = "linearity"
    reference_file_types = ["linearity", "integralnonlinearity"]

    def process(self, input):
        model = self.open_for_update(input)
        ref = self.open_reference(model, "linearity")
        check_shape(ref.coeffs[0], "coeffs", model.data.shape[1:], ref.meta.filename)
        inl, reason = optional_reference(self, model, "integralnonlinearity")
        if inl is None:
            log.info("Integral non-linearity not corrected: %s", reason)
        # Both tables may be made for counts with the bias level in: put back what refpix took
        # while they apply
        raw = ref.meta.get("input_counts") == "raw"
        bias = model.tree.get("refpix_bias")
        restored = bias is not None and (raw or inl is not None)
        if restored:
            bias = (np.asarray(bias["channel"], np.float32), np.asarray(bias["row"], np.float32))
            shift_bias(model.data, *bias, add=True)
        if inl is not None:
            correct_integral_nonlinearity(model.data, model.groupdq, model.meta.exposure.read_pattern,
                                          inl.value, inl.correction)
            log.info("Integral non-linearity corrected in %d channels", inl.correction.shape[0])
            inl.close()
        if restored and not raw:
            shift_bias(model.data, *bias)
            restored = False
        if restored:
            log.info("Linearity applied to raw counts (bias restored for it)")
        model.meta.linearity = {"integral_nonlinearity": inl is not None}
        correct_linearity(model.data, model.groupdq, ref.coeffs, model.pixeldq,
                          model.meta.exposure.read_pattern, coeffs_dq=ref.dq)
        if restored:
            shift_bias(model.data, *bias)
        ref.close()
        return model
