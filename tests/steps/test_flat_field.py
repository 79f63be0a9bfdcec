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


def test_a_flat_of_the_science_pixels_only_divides_the_same(tiny, tmp_path):
    from calpipe import datamodels as dm
    from calpipe.detector import science

    image = RampFitStep.call(DQInitStep.call(tiny[0]))
    full = FlatFieldStep.call(image.copy())
    with dm.open(next(tiny[1].glob("*flat*.asdf"))) as flat:
        cropped = dm.FlatRefModel(meta=flat.meta.to_dict(), data=science(flat.data).copy(),
                                  err=science(flat.err).copy(), dq=science(flat.dq).copy())
    cropped.save(tmp_path / "science_flat.asdf")
    result = FlatFieldStep.call(image, override_flat=str(tmp_path / "science_flat.asdf"))
    for name in ("data", "err", "var_flat", "dq"):
        np.testing.assert_array_equal(getattr(result, name), getattr(full, name))
