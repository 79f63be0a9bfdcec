"""linearity: map measured counts to linear counts with a per-pixel polynomial."""

from calpipe.kernels.linearity import correct_linearity
from calpipe.step import CalStep

from ._common import check_shape


class LinearityStep(CalStep):
    """Correct non-linearity; pixels with NaN or zero coefficients get NO_LIN_CORR."""

    class_alias = "linearity"
    reference_file_types = ["linearity"]

    def process(self, input):
        model = self.open_for_update(input)
        ref = self.open_reference(model, "linearity")
        check_shape(ref.coeffs[0], "coeffs", model.data.shape[1:], ref.meta.filename)
        correct_linearity(model.data, model.groupdq, ref.coeffs, model.pixeldq,
                          model.meta.exposure.read_pattern, coeffs_dq=ref.dq)
        ref.close()
        return model
