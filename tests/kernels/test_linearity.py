import numpy as np
import pytest
from support import readout

from calpipe import dqflags
from calpipe.kernels.linearity import correct_linearity
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
