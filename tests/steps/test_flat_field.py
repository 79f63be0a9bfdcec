"""flat_field as a step: the image is divided by the flat, the flat's error goes to var_flat,
and pixels without a usable flat are flagged and left as they were."""

import numpy as np
from support.tiny_data import HALF_FLAT, NAN_FLAT

from calpipe import dqflags
from calpipe.steps import DQInitStep, FlatFieldStep, RampFitStep


def _sci(y, x):
    return y - 4, x - 4


def test_divides_by_the_flat_and_carries_its_error(tiny):
    image = RampFitStep.call(DQInitStep.call(tiny[0]))
    before = image.data.copy()
    result = FlatFieldStep.call(image)
    assert result.data[_sci(*HALF_FLAT)] == np.float32(before[_sci(*HALF_FLAT)] / 0.5)
    assert result.data[10, 10] == before[10, 10]  # a flat of 1
    assert result.dq[_sci(*NAN_FLAT)] & dqflags.NO_FLAT_FIELD
    assert result.data[_sci(*NAN_FLAT)] == before[_sci(*NAN_FLAT)]
    np.testing.assert_allclose(result.var_flat[10, 10], (0.01 * result.data[10, 10]) ** 2, rtol=1e-5)
    np.testing.assert_allclose(result.err**2, result.var_poisson + result.var_rnoise + result.var_flat, rtol=1e-5)


def test_non_imaging_exposure_is_skipped(tiny):
    image = RampFitStep.call(DQInitStep.call(tiny[0]))
    image.meta.exposure.type = "WFI_SPECTRAL"
    before = image.data.copy()
    result = FlatFieldStep.call(image)
    assert result.meta.cal_step.flat_field == "SKIPPED"
    np.testing.assert_array_equal(result.data, before)
