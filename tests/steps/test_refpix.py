"""refpix as a step: a bias common to a channel, seen by the border reference pixels, is removed
from every science pixel and recorded with the variance of its estimate."""

import numpy as np
from support.tiny_data import PEDESTAL, tiny_rate

from calpipe.steps import DQInitStep, RefPixStep


def test_pedestal_is_removed_and_recorded(tiny):
    ramp = DQInitStep.call(tiny[0])
    pattern = ramp.meta.exposure.read_pattern
    ramp = RefPixStep.call(ramp)
    signal = np.stack([tiny_rate() * ramp.meta.exposure.frame_time * np.mean(reads) for reads in pattern])
    np.testing.assert_allclose(ramp.data[:, 4:-4, 4:-4], np.rint(PEDESTAL + signal)[:, 4:-4, 4:-4] - PEDESTAL,
                               atol=1e-3)
    np.testing.assert_allclose(ramp.refpix_bias["channel"], PEDESTAL, atol=1e-3)
    # Noiseless border pixels: the estimates have no scatter.
    assert np.all(ramp.refpix_variance["channel"] == 0)
    assert ramp.meta.cal_step.refpix == "COMPLETE"
