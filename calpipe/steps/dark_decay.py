"""dark_decay: subtract the signal that decays after reset, by each read's time."""

import logging

from calpipe.kernels.dark_decay import pixel_read_times, subtract_dark_decay
from calpipe.step import CalStep

from ._common import detector_number, optional_reference, skip

log = logging.getLogger(__name__)


class DarkDecayStep(CalStep):
    """Subtract ``A exp(-t / tau)`` averaged over each resultant's reads (docs/steps/dark_decay.md).

    Skipped, with the reason logged, when the store holds no darkdecaysignal reference or the
    reference has no amplitude and time constant for the exposure's detector.
    """

    class_alias = "dark_decay"
    reference_file_types = ["darkdecaysignal"]

    def process(self, input):
        model = self.open_for_update(input)
        ref, reason = optional_reference(self, model, "darkdecaysignal")
        if ref is None:
            return skip(self, model, log, reason)
        detector = str(model.meta.instrument.detector).upper()
        row = ref.tree["decay_table"].get(detector) or {}
        amplitude, time_constant = row.get("amplitude"), row.get("time_constant")
        ref.close()
        number = detector_number(detector)
        if amplitude is None or time_constant is None or number is None:
            return skip(self, model, log, f"{ref.meta.filename} has no decay for detector {detector}")
        exposure = model.meta.exposure
        times = pixel_read_times(model.data.shape[1:], exposure.frame_time, number)
        subtract_dark_decay(model.data, exposure.read_pattern, exposure.frame_time, amplitude, time_constant,
                            times)
        log.info("Dark decay %.3g DN, time constant %.3g s, subtracted", amplitude, time_constant)
        model.meta.dark_decay = {"amplitude": float(amplitude), "time_constant": float(time_constant)}
        return model
