"""flat_field: divide by the flat, propagating its error into var_flat."""

import logging

from calpipe.detector import science
from calpipe.kernels.image import apply_flat
from calpipe.step import CalStep

from ._common import check_shape, is_imaging

log = logging.getLogger(__name__)


class FlatFieldStep(CalStep):
    """Flat-field imaging exposures; NaN or non-positive flat values get NO_FLAT_FIELD."""

    class_alias = "flat_field"
    reference_file_types = ["flat"]

    def process(self, input):
        model = self.open_for_update(input)
        if not is_imaging(model):
            log.info("Exposure type %s is not imaging: flat field skipped", model.meta.exposure.type)
            self.record(model, "SKIPPED")
            return model
        ref = self.open_reference(model, "flat")
        # A flat covers the full detector, or the science pixels only (as the Roman mission's do)
        window = (lambda a: a) if ref.data.shape == model.data.shape else science
        check_shape(window(ref.data), "data", model.data.shape, ref.meta.filename)
        model.var_flat = apply_flat(
            model.data,
            model.var_poisson,
            model.var_rnoise,
            model.err,
            model.dq,
            window(ref.data),
            flat_err=window(ref.err),
            flat_dq=window(ref.dq),
        )
        ref.close()
        return model
