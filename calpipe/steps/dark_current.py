"""dark_current: subtract the dark-current rate from the slope image."""

import logging

from calpipe.detector import science
from calpipe.errors import InputError
from calpipe.kernels.image import dark_scale, subtract_dark
from calpipe.step import CalStep

from ._common import check_shape

log = logging.getLogger(__name__)


class DarkCurrentStep(CalStep):
    """Subtract the dark rate, optionally scaled to the exposure's detector temperature."""

    class_alias = "dark_current"
    reference_file_types = ["dark"]
    spec = """
    scale_temperature = boolean(default=False)  # Scale the dark from the reference's to the exposure's temperature
    scale_factor = float(default=2.0, min=0)    # Dark current grows by this factor ...
    scale_interval = float(default=6.0, min=0)  # ... per this many kelvin
    """

    def process(self, input):
        model = self.open_for_update(input)
        ref = self.open_reference(model, "dark")
        check_shape(science(ref.data), "data", model.data.shape, ref.meta.filename)
        scale = 1.0
        if self.scale_temperature:
            ref_t = ref.meta.get("temperature")
            exp_t = model.meta.instrument.get("detector_temperature")
            if ref_t is None or exp_t is None:
                missing = "meta.temperature of the dark" if ref_t is None else "meta.instrument.detector_temperature"
                raise InputError(f"{model.meta.filename}: scale_temperature needs {missing}")
            scale = dark_scale(ref_t, exp_t, self.scale_factor, self.scale_interval)
            log.info("Dark scaled by %.4f from %.2f K to %.2f K", scale, ref_t, exp_t)
        subtract_dark(model.data, model.dq, science(ref.data), dark_dq=science(ref.dq), scale=scale)
        model.meta.dark_current = {"scale": float(scale)}
        ref.close()
        return model
