"""saturation: flag resultants at or above the per-pixel saturation threshold."""

from calpipe.kernels.saturation import flag_saturation
from calpipe.step import CalStep

from ._common import check_shape


class SaturationStep(CalStep):
    """Flag SATURATED (and AD_FLOOR) resultants in the group DQ; see docs/steps/saturation.md."""

    class_alias = "saturation"
    reference_file_types = ["saturation"]

    def process(self, input):
        model = self.open_for_update(input)
        ref = self.open_reference(model, "saturation")
        check_shape(ref.data, "data", model.data.shape[1:], ref.meta.filename)
        flag_saturation(
            model.data,
            ref.data,
            model.meta.exposure.read_pattern,
            model.groupdq,
            model.pixeldq,
            threshold_dq=ref.dq,
        )
        ref.close()
        return model
