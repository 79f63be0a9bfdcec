import numpy as np
import pytest

from calpipe.kernels.dark_decay import (
    READ_ZERO,
    pixel_read_times,
    read_decay,
    resultant_factors,
    subtract_dark_decay,
)

FRAME_TIME = 3.04


def slow_pixel_read_times(ny, nx, frame_time, number, nchannels=32):
    """Pixel by pixel: the position of the pixel in its channel's readout order."""
    width = nx // nchannels
    times = np.empty((ny, nx))
    for y in range(ny):
        for x in range(nx):
            channel, col = divmod(x, width)
            if channel % 2:
                col = width - 1 - col  # odd channels read backwards
            times[y, x] = (y * width + col) * frame_time / (ny * width)
    return times[:, ::-1] if number % 3 == 0 else times[::-1, :]


@pytest.mark.parametrize("number, nx", [(1, 128), (3, 128), (17, 96), (18, 96)])
def test_pixel_read_times_follow_the_channel_readout_order(number, nx):
    times = pixel_read_times((64, nx), FRAME_TIME, number)
    np.testing.assert_allclose(times, slow_pixel_read_times(64, nx, FRAME_TIME, number), rtol=1e-12)
    assert times.min() == 0.0 and times.max() < FRAME_TIME
    # every channel reads each of its pixels once, at distinct times
    assert np.unique(times[:, : nx // 32]).size == 64 * (nx // 32)


def test_pixel_read_times_refuse_columns_that_do_not_split_into_channels():
    with pytest.raises(ValueError, match="channels"):
        pixel_read_times((64, 100), FRAME_TIME, 1)


def test_resultant_factors_are_the_mean_over_reads():
    pattern = [[1], [2, 3], [4, 5, 6, 7]]
    tau = 20.0
    expected = [np.mean([np.exp(-(k - READ_ZERO) * FRAME_TIME / tau) for k in reads]) for reads in pattern]
    np.testing.assert_allclose(resultant_factors(pattern, FRAME_TIME, tau), expected, rtol=1e-14)


def slow_subtract(resultants, pattern, amplitude, tau, times):
    """Read by read, pixel by pixel: subtract the mean decay over each resultant's reads."""
    out = resultants.astype(np.float64).copy()
    for i, reads in enumerate(pattern):
        for y in range(times.shape[0]):
            for x in range(times.shape[1]):
                out[i, y, x] -= np.mean([amplitude * np.exp(-((k - 1.5) * FRAME_TIME + times[y, x]) / tau)
                                         for k in reads])
    return out


def test_subtraction_matches_the_read_by_read_reference():
    rng = np.random.default_rng(1)
    pattern = [[1], [2, 3], [4, 5, 6, 7], [8, 9, 10, 11, 12, 13], [14]]
    times = pixel_read_times((16, 64), FRAME_TIME, 5)
    data = rng.uniform(0, 1000, (5, 16, 64)).astype(np.float32)
    expected = slow_subtract(data, pattern, 35.0, 18.0, times)
    subtract_dark_decay(data, pattern, FRAME_TIME, 35.0, 18.0, times)
    np.testing.assert_allclose(data, expected, rtol=0, atol=2e-4)


def test_injected_decay_is_removed():
    """Truth: a ramp; measured: each read plus its decay, averaged into resultants."""
    rng = np.random.default_rng(2)
    pattern = [[1], [2, 3, 4], [5, 6, 7, 8, 9, 10], [11]]
    times = pixel_read_times((32, 64), FRAME_TIME, 9)
    rate = rng.uniform(0, 5, (32, 64))
    truth = np.array([np.mean([rate * k * FRAME_TIME for k in reads], axis=0) for reads in pattern])
    measured = np.array([np.mean([rate * k * FRAME_TIME + read_decay(k, FRAME_TIME, 50.0, 12.0, times)
                                  for k in reads], axis=0) for reads in pattern]).astype(np.float32)
    assert np.abs(measured - truth).max() > 40  # the decay is there to remove
    subtract_dark_decay(measured, pattern, FRAME_TIME, 50.0, 12.0, times)
    np.testing.assert_allclose(measured, truth, rtol=0, atol=1e-3)


def test_refuses_mismatched_inputs():
    data = np.zeros((2, 8, 64), np.float32)
    times = pixel_read_times((8, 64), FRAME_TIME, 1)
    with pytest.raises(ValueError, match="time_constant"):
        subtract_dark_decay(data, [[1], [2]], FRAME_TIME, 1.0, 0.0, times)
    with pytest.raises(ValueError, match="read_pattern"):
        subtract_dark_decay(data, [[1]], FRAME_TIME, 1.0, 5.0, times)
    with pytest.raises(ValueError, match="pixel_times"):
        subtract_dark_decay(data, [[1], [2]], FRAME_TIME, 1.0, 5.0, times[:4])
