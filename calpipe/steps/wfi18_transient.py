"""wfi18_transient: remove the transient in WFI18's first read, or flag the rows it spoils."""

import logging

import numpy as np

from calpipe import dqflags
from calpipe.detector import science
from calpipe.kernels.dark_decay import pixel_read_times
from calpipe.kernels.ramp import resultant_times
from calpipe.kernels.wfi18_transient import MIN_RESULTANTS, correct_transient, rows_to_flag
from calpipe.step import CalStep

from ._common import detector_number, skip

log = logging.getLogger(__name__)

DETECTOR = "WFI18"
_UNUSABLE = np.uint8(dqflags.DO_NOT_USE | dqflags.SATURATED | dqflags.JUMP_DET)


class Wfi18TransientStep(CalStep):
    """Fit and subtract WFI18's first-read transient (docs/steps/wfi18_transient.md); skipped,
    with the reason logged, for any other detector."""

    class_alias = "wfi18_transient"
    spec = """
    mask_rows = boolean(default=False)  # Flag the rows read first in the first resultant instead of fitting
    """

    def process(self, input):
        model = self.open_for_update(input)
        detector = str(model.meta.instrument.detector).upper()
        if detector != DETECTOR:
            return skip(self, model, log, f"detector {detector}: the transient is {DETECTOR}'s")
        exposure = model.meta.exposure
        times = pixel_read_times(model.data.shape[1:], exposure.frame_time, detector_number(detector))
        params = None
        if self.mask_rows:
            log.info("mask_rows: flagging instead of fitting")
        elif model.data.shape[0] < MIN_RESULTANTS:
            log.info("%d resultants, the fit needs %d: flagging instead", model.data.shape[0], MIN_RESULTANTS)
        else:
            usable = ~np.any(science(model.groupdq[:MIN_RESULTANTS]) & _UNUSABLE, axis=0)
            usable &= (science(model.pixeldq) & np.uint32(dqflags.DO_NOT_USE)) == 0
            mean_times, _, _ = resultant_times(exposure.read_pattern, exposure.frame_time)
            params = correct_transient(science(model.data), usable, mean_times, science(times))
            if params is None:
                log.warning("The transient fit failed: flagging instead")
        if params is None:
            flagged = rows_to_flag(times.mean(axis=1), exposure.frame_time)
            model.groupdq[0, flagged, :] |= np.uint8(dqflags.DO_NOT_USE)
            model.meta.wfi18_transient = {"method": "flagged", "rows": int(flagged.sum())}
        else:
            log.info("Transient a=%.3g DN, b=%.3g DN, tau_a=%.3g s, tau_b=%.3g s subtracted", *params)
            model.meta.wfi18_transient = {"method": "fit", "parameters": list(params)}
        return model
