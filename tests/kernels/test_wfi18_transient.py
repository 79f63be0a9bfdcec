import numpy as np
import pytest

from calpipe.kernels.dark_decay import pixel_read_times
from calpipe.kernels.wfi18_transient import (
    MASK_FRACTION,
    correct_transient,
    double_exponential,
    fit_transient,
    residual_rows,
    rows_to_flag,
)

FRAME_TIME = 3.04
TRUE = (60.0, -6.0, 0.2, 0.7)
PATTERN = [[1], [2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12], [13]]


def _ramp(n=256, seed=0, noise=5.0):
    """Resultants of a sky with a few bright pixels, read noise per resultant, and the
    transient added to the first read: (measured, truth, pixel times)."""
    rng = np.random.default_rng(seed)
    times = pixel_read_times((n, n), FRAME_TIME, 18)
    rate = rng.uniform(0.5, 2.0, (n, n))
    rate[rng.random((n, n)) < 0.02] = 800.0  # stars: excluded by the faint-pixel cut
    mean_times = np.array([np.mean(r) for r in PATTERN]) * FRAME_TIME
    truth = (rate[None] * mean_times[:, None, None]).astype(np.float32)
    truth += rng.normal(0, noise, truth.shape).astype(np.float32)
    measured = truth.copy()
    measured[0] += double_exponential(times, *TRUE).astype(np.float32)
    return measured, truth, times, mean_times


def test_residual_rows_recover_the_transient_without_noise():
    measured, truth, times, mean_times = _ramp(noise=0.0)
    rows = residual_rows(measured, np.ones(times.shape, bool), mean_times)
    # a row is read over ft / n = 12 ms, along which the transient falls by up to 3.6 DN: the
    # faint half of the row averages it a little differently from the whole row
    np.testing.assert_allclose(rows, double_exponential(times, *TRUE).mean(axis=1), atol=0.2)


def test_injected_transient_is_fitted_and_removed():
    measured, truth, times, mean_times = _ramp()
    params = correct_transient(measured, np.ones(times.shape, bool), mean_times, times)
    assert params is not None
    assert params[0] + params[1] == pytest.approx(TRUE[0] + TRUE[1], abs=1.0)
    # what is left of a transient of up to 54 DN: well under the 5 DN read noise, row by row
    row_error = (measured[0] - truth[0]).mean(axis=1)
    assert np.abs(row_error).max() < 1.0
    assert np.abs(np.median(measured[0] - truth[0])) < 0.1
    np.testing.assert_array_equal(measured[1:], truth[1:])  # only the first resultant changes


def test_a_fit_without_usable_rows_fails_cleanly():
    measured, truth, times, mean_times = _ramp(n=64)
    before = measured.copy()
    assert correct_transient(measured, np.zeros(times.shape, bool), mean_times, times) is None
    np.testing.assert_array_equal(measured, before)
    assert fit_transient(np.arange(5.0), np.full(5, np.nan)) is None


def test_rows_to_flag_are_those_read_first():
    times = pixel_read_times((4096, 128), FRAME_TIME, 18)  # WFI18 reads its rows bottom up
    flagged = rows_to_flag(times.mean(axis=1), FRAME_TIME)
    assert flagged[:1000].all() and not flagged[1001:].any()
    assert flagged.sum() == pytest.approx(MASK_FRACTION * 4096, abs=1)


def test_needs_five_resultants():
    with pytest.raises(ValueError, match="5 resultants"):
        correct_transient(np.zeros((4, 8, 64), np.float32), np.ones((8, 64), bool), np.arange(4.0),
                          np.zeros((8, 64)))
