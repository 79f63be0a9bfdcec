"""dq_init as a step: raw counts become a float32 ramp, the mask becomes the pixel DQ, and the
border reference pixels are kept as read."""

import numpy as np
import pytest
from support.tiny_data import DEAD, N

from calpipe import datamodels as dm
from calpipe import dqflags
from calpipe.errors import CalpipeError
from calpipe.steps import DQInitStep


def test_ramp_holds_the_raw_counts_and_the_mask(tiny):
    uncal, _ = tiny
    ramp = DQInitStep.call(uncal)
    with dm.open(uncal) as raw:
        np.testing.assert_array_equal(ramp.data, raw.data.astype(np.float32))
    assert isinstance(ramp, dm.RampModel) and ramp.data.dtype == np.float32
    assert ramp.pixeldq[DEAD] == dqflags.DEAD | dqflags.DO_NOT_USE
    border = np.ones((N, N), bool)
    border[4:-4, 4:-4] = False
    assert np.all(ramp.pixeldq[border] == dqflags.REFERENCE_PIXEL)
    assert not np.any(ramp.groupdq)
    np.testing.assert_array_equal(ramp.reference_border["left"], ramp.data[:, :, :4])
    assert ramp.meta.cal_step.dq_init == "COMPLETE"


def test_a_ramp_passes_through_unchanged(tiny):
    ramp = DQInitStep.call(tiny[0])
    assert DQInitStep.call(ramp) is ramp


def test_a_calibrated_image_is_refused(tiny):
    image = dm.ImageModel(data=np.zeros((8, 8), np.float32))
    with pytest.raises(CalpipeError, match="needs a raw exposure"):
        DQInitStep.call(image)
