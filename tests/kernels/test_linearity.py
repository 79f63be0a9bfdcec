import numpy as np
import pytest
from support import readout

from calpipe import dqflags
from calpipe.kernels.linearity import correct_integral_nonlinearity, correct_linearity
from calpipe.kernels.ramp import fit_ramps


def test_polynomial_applied_by_hand():
    cube = np.array([[[100.0, 2000.0]], [[300.0, 4000.0]]], np.float32)  # (2, 1, 2)
    coeffs = np.zeros((3, 1, 2), np.float32)
    coeffs[:, 0, 0] = [1.0, 1.0, 1e-4]   # c = 1 + m + 1e-4 m^2
    coeffs[:, 0, 1] = [0.0, 1.01, -1e-6]
    gdq = np.zeros(cube.shape, np.uint8)
    pdq = np.zeros((1, 2), np.uint32)
    correct_linearity(cube, gdq, coeffs, pdq, [[1], [2]])
    np.testing.assert_allclose(cube[:, 0, 0], [1 + 100 + 1.0, 1 + 300 + 9.0], rtol=1e-6)
    np.testing.assert_allclose(cube[:, 0, 1], [2020 - 4.0, 4040 - 16.0], rtol=1e-6)
    assert pdq.tolist() == [[0, 0]]


def test_saturated_and_uncorrectable_pixels_left_alone():
    cube = np.full((2, 1, 4), 1000.0, np.float32)
    coeffs = np.zeros((2, 1, 4), np.float32)
    coeffs[1] = 2.0
    coeffs[0, 0, 1] = np.nan
    coeffs[:, 0, 2] = 0.0
    gdq = np.zeros(cube.shape, np.uint8)
    gdq[1, 0, 0] = dqflags.SATURATED | dqflags.DO_NOT_USE
    pdq = np.zeros((1, 4), np.uint32)
    cdq = np.array([[0, 0, 0, dqflags.NO_LIN_CORR]], np.uint32)
    correct_linearity(cube, gdq, coeffs, pdq, [[1], [2]], cdq)
    assert cube[:, 0, 0].tolist() == [2000.0, 1000.0]
    assert (cube[:, 0, 1:] == 1000.0).all()
    assert pdq.tolist() == [[0, dqflags.NO_LIN_CORR, dqflags.NO_LIN_CORR, dqflags.NO_LIN_CORR]]


def test_inverts_a_known_nonlinearity():
    # m = c - a c^2: the exact inverse c = (1 - sqrt(1 - 4 a m)) / (2 a) expanded to 6 terms
    a = 1e-6
    c_true = np.linspace(0, 50000, 11)
    m = c_true - a * c_true**2
    catalan = [0, 1, 1, 2, 5, 14, 42]
    coeffs = np.array([catalan[k] * a ** (k - 1) if k else 0 for k in range(7)])
    cube = m.astype(np.float32).reshape(11, 1, 1)
    correct_linearity(cube, np.zeros(cube.shape, np.uint8),
                      coeffs.astype(np.float32)[:, None, None], np.zeros((1, 1), np.uint32),
                      [[k] for k in range(1, 12)])
    np.testing.assert_allclose(cube.ravel(), c_true, rtol=3e-4, atol=0.01)


# --------------------------------------------------------------------------------------
# Multi-read resultants, against read-level ramps (tests/support/readout.py)
LEVEL = 0.97 * readout.FULL_WELL
EIGHT_READS = [list(range(1 + 8 * i, 9 + 8 * i)) for i in range(8)]
UNEVEN = [[1], [3, 4], [6, 7, 8, 9], [11, 12, 13, 14], list(range(16, 24))]


def corrected(resultants, pattern):
    cube = resultants.reshape(len(pattern), 1, -1).copy()
    shape = cube.shape[1:]
    correct_linearity(cube, np.zeros(cube.shape, np.uint8), readout.coefficient_cube(shape),
                      np.zeros(shape, np.uint32), pattern)
    return cube[:, 0]


def exact(reads, pattern):
    """The mean over each resultant's reads of their linear counts."""
    linear = readout.linear(reads)
    return np.stack([linear[np.asarray(r) - 1].mean(axis=0) for r in pattern])


@pytest.mark.parametrize("pattern", [EIGHT_READS, UNEVEN], ids=["8x8 reads", "uneven, skipped reads"])
def test_multi_read_resultants_match_their_corrected_reads(pattern):
    # noiseless ramps ending at 0.5 to 0.95 of the saturation level
    fractions = np.array([0.5, 0.8, 0.9, 0.95])
    rate = np.array([readout.counts_for(f * LEVEL, pattern) for f in fractions])
    resultants, reads = readout.ramps(rate, pattern, seed=0, noise=False)
    truth = exact(reads, pattern)
    error = corrected(resultants, pattern) - truth
    # the polynomial of the mean misses by up to 550 DN (1 %) here; through the reads
    # the error stays below 0.05 % of the counts
    assert np.all(np.abs(error) <= 5e-4 * truth + 0.01)
    # and the slopes of bright pixels are unbiased
    fit = fit_ramps(corrected(resultants, pattern)[:, None], np.zeros((len(pattern), 1, 4), np.uint8),
                    np.full((1, 4), readout.READ_NOISE, np.float32), np.full((1, 4), readout.GAIN, np.float32),
                    pattern, readout.FRAME_TIME, algorithm="optimal", detect_jumps=False)
    np.testing.assert_allclose(fit.slope[0], rate, rtol=5e-4)


def test_noisy_bright_pixels_with_long_resultants():
    """0.95 of saturation with 8-read resultants: slopes unbiased within their errors."""
    rng = np.random.default_rng(4)
    npix = 4000
    rate = readout.counts_for(0.95 * LEVEL, EIGHT_READS) * rng.uniform(0.97, 1.0, npix)
    resultants, _ = readout.ramps(rate, EIGHT_READS, seed=5)
    cube = corrected(resultants, EIGHT_READS)[:, None]
    fit = fit_ramps(cube, np.zeros(cube.shape, np.uint8), np.full((1, npix), readout.READ_NOISE, np.float32),
                    np.full((1, npix), readout.GAIN, np.float32), EIGHT_READS, readout.FRAME_TIME)
    z = (fit.slope[0] - rate) / fit.err[0]
    assert abs(np.median(z)) < 0.06
    assert abs(np.median(fit.slope[0] / rate - 1)) < 1e-4


def test_a_jump_beside_a_resultant_does_not_spoil_its_correction():
    pattern = UNEVEN
    rate = np.full(3, readout.counts_for(0.3 * LEVEL, pattern))
    # 4000 DN after read 10 (between resultants 2 and 3), after read 2, after read 15
    hits = [(0, 10, 4000.0), (1, 2, 4000.0), (2, 15, 4000.0)]
    resultants, reads = readout.ramps(rate, pattern, seed=0, noise=False, hits=hits)
    error = corrected(resultants, pattern) - exact(reads, pattern)
    assert np.abs(error).max() < 0.5  # DN


# -- integral non-linearity ----------------------------------------------------------------
def _inl_table(nchannels, rng):
    value = np.linspace(0.0, 65535.0, 257)
    period = rng.uniform(3000, 9000, (nchannels, 1))
    phase = rng.uniform(0, 6, (nchannels, 1))
    return value, rng.uniform(1, 4, (nchannels, 1)) * np.sin(2 * np.pi * value / period + phase)


def _distort(true, value, correction, width):
    """Measured counts of true reads: ``measured + correction(measured) = true`` (fixed point)."""
    measured = true.copy()
    for _ in range(6):
        for c in range(correction.shape[0]):
            cols = np.s_[..., c * width:(c + 1) * width]
            measured[cols] = true[cols] - np.interp(measured[cols], value, correction[c])
    return measured


def test_inl_of_single_reads_is_the_table_by_hand():
    value = np.array([0.0, 100.0, 200.0])
    correction = np.array([[0.0, 10.0, -10.0], [1.0, 1.0, 1.0]])
    cube = np.array([[[50.0, 150.0, 250.0, 7.0]]], np.float32)  # (1, 1, 4): two channels of two columns
    correct_integral_nonlinearity(cube, np.zeros(cube.shape, np.uint8), [[1]], value, correction)
    assert cube.ravel().tolist() == [55.0, 150.0, 251.0, 8.0]


@pytest.mark.parametrize("even", [True, False])
def test_inl_matches_a_read_by_read_reference(even):
    """Each read estimated from the resultant and the slope through its neighbours, corrected
    through the table, averaged: written out with np.interp per read. Tables at evenly and
    unevenly spaced counts."""
    rng = np.random.default_rng(5)
    pattern = [[1], [2, 3], [4, 5, 6, 7], [8, 9, 10]]
    value, correction = _inl_table(4, rng)
    if not even:
        value = 65535 * (value / 65535) ** 1.5
    cube = (12000 + rng.uniform(0, 300, (1, 8, 16)) * np.arange(1, 5)[:, None, None]).astype(np.float32)
    gdq = np.zeros(cube.shape, np.uint8)
    gdq[3, 0, 0] = dqflags.SATURATED
    mean = np.array([np.mean(r) for r in pattern])
    expected = cube.astype(np.float64).copy()
    for i, reads in enumerate(pattern):
        lo, hi = max(i - 1, 0), min(i + 1, 3)
        for y in range(8):
            for x in range(16):
                if gdq[i, y, x]:
                    continue
                rise = 0.0 if gdq[hi, y, x] else (cube[hi, y, x] - cube[lo, y, x]) / (mean[hi] - mean[lo])
                reads_at = cube[i, y, x] + rise * (np.array(reads) - mean[i])
                expected[i, y, x] += np.mean(np.interp(reads_at, value, correction[x // 4]))
    correct_integral_nonlinearity(cube, gdq, pattern, value, correction)
    np.testing.assert_allclose(cube, expected, rtol=0, atol=2e-3)
    assert cube[3, 0, 0] == expected[3, 0, 0]  # a saturated resultant is left alone


def test_inl_removes_an_injected_distortion():
    """Truth: straight ramps read by read; measured: each read through the converter's
    distortion, averaged into resultants."""
    rng = np.random.default_rng(6)
    pattern = [[1], [2, 3], [4, 5, 6, 7], [8, 9, 10, 11, 12, 13], [14, 15, 16, 17, 18, 19], [20]]
    value, correction = _inl_table(8, rng)
    rate = rng.uniform(5, 1500, (16, 64))
    start = 11000 + rng.uniform(0, 2000, (16, 64))
    true_reads = {k: start + rate * k for reads in pattern for k in reads}
    truth = np.array([np.mean([true_reads[k] for k in reads], axis=0) for reads in pattern])
    measured = np.array([np.mean([_distort(true_reads[k], value, correction, 8) for k in reads], axis=0)
                         for reads in pattern]).astype(np.float32)
    assert np.abs(measured - truth).max() > 2
    correct_integral_nonlinearity(measured, np.zeros(measured.shape, np.uint8), pattern, value, correction)
    residual = measured - truth
    assert np.abs(residual).max() < 0.05  # float32 counts near 12,000-40,000 DN: ~0.004 DN steps


def test_inl_refuses_mismatched_tables():
    cube = np.zeros((1, 2, 6), np.float32)
    gdq = np.zeros(cube.shape, np.uint8)
    with pytest.raises(ValueError, match="channels"):
        correct_integral_nonlinearity(cube, gdq, [[1]], np.arange(3.0), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="values"):
        correct_integral_nonlinearity(cube, gdq, [[1]], np.arange(3.0), np.zeros((2, 4)))
