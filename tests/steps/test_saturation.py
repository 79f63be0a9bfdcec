"""saturation as a step: resultants from the first one at or above the reference threshold
are flagged SATURATED, earlier ones are not."""

import numpy as np
from support.tiny_data import N, tiny_rate, write_tiny_exposure

from calpipe import dqflags
from calpipe.steps import DQInitStep, SaturationStep


def test_flags_start_at_the_first_resultant_over_the_threshold(tiny, tmp_path):
    rate = tiny_rate()
    rate[20, 20] = 8000.0  # mean reads 1, 3, 6, 8 (x 8000 + pedestal): over 60000 DN in resultant 4 only
    rate[21, 21] = 30000.0  # over from resultant 2 (mean of reads 2 and 4: 90000)
    uncal = write_tiny_exposure(tmp_path / "bright_uncal.asdf", rate=rate)
    ramp = SaturationStep.call(DQInitStep.call(uncal))
    sat = (ramp.groupdq & dqflags.SATURATED) > 0
    assert sat[:, 20, 20].tolist() == [False, False, False, True]
    assert sat[:, 21, 21].tolist() == [False, True, True, True]
    others = np.ones((N, N), bool)
    others[20, 20] = others[21, 21] = False
    assert not np.any(sat[:, others])
    assert ramp.meta.cal_step.saturation == "COMPLETE"
