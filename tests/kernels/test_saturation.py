import numpy as np
import pytest
from support import readout

from calpipe import dqflags
from calpipe.kernels.linearity import correct_linearity
from calpipe.kernels.ramp import fit_ramps
from calpipe.kernels.saturation import flag_saturation, read_index_moments

SAT = dqflags.SATURATED | dqflags.DO_NOT_USE
FLOOR = dqflags.AD_FLOOR | dqflags.DO_NOT_USE


def run(ramps, threshold, pattern, threshold_dq=None):
    """ramps: (npix, nres) -> groupdq (npix, nres), pixeldq (npix,)."""
    ramps = np.asarray(ramps, dtype=np.float32)
    npix, nres = ramps.shape
    cube = np.ascontiguousarray(ramps.T.reshape(nres, 1, npix))
    groupdq = np.zeros(cube.shape, np.uint8)
    pixeldq = np.zeros((1, npix), np.uint32)
    thr = np.asarray(threshold, np.float32).reshape(1, npix)
    tdq = None if threshold_dq is None else np.asarray(threshold_dq, np.uint32).reshape(1, npix)
    flag_saturation(cube, thr, pattern, groupdq, pixeldq, tdq)
    return groupdq[:, 0, :].T, pixeldq[0]


def test_read_index_moments():
    mean, last = read_index_moments([[1], [2, 3, 4], [5, 6]])
    np.testing.assert_allclose(mean, [1.0, 3.0, 5.5])
    np.testing.assert_allclose(last, [1.0, 4.0, 6.0])


def test_saturates_from_first_crossing_onwards():
    pattern = [[1], [2], [3], [4]]
    gdq, pdq = run([[10, 50, 120, 90], [10, 20, 30, 40], [100, 200, 300, 400]], [100, 100, 100], pattern)
    assert gdq[0].tolist() == [0, 0, SAT, SAT]  # a later lower value is still saturated
    assert gdq[1].tolist() == [0, 0, 0, 0]
    assert gdq[2].tolist() == [SAT] * 4  # reaching the threshold exactly counts
    assert pdq.tolist() == [0, 0, 0]


def test_resultant_that_may_hold_saturated_reads():
    # reads 2-4 average to 3: a ramp from the resultant before (10 at read 1) to the
    # threshold at read 4 has mean 10 + 90 * (3 - 1) / (4 - 1) = 70 there
    pattern = [[1], [2, 3, 4], [5]]
    gdq, _ = run([[10, 80, 120], [10, 65, 120], [10, 80, 99]], [100, 100, 100], pattern)
    assert gdq[0].tolist() == [0, SAT, SAT]
    assert gdq[1].tolist() == [0, 0, SAT]
    assert gdq[2].tolist() == [0, 0, 0]  # a single-read last resultant below the threshold
    # the last resultant is tested too, from the one before: 50 + 50 * (4 - 2) / (5 - 2) = 83.3
    gdq, _ = run([[10, 50, 85], [10, 50, 80]], [100, 100], [[1], [2], [3, 4, 5]])
    assert gdq.tolist() == [[0, 0, SAT], [0, 0, 0]]
    # a first resultant of reads 1-3, from the reset: 100 * 2 / 3
    gdq, _ = run([[70, 120], [60, 120]], [100, 100], [[1, 2, 3], [4]])
    assert gdq.tolist() == [[SAT, SAT], [0, SAT]]


def test_ad_floor_and_no_sat_check():
    pattern = [[1], [2], [3]]
    gdq, pdq = run(
        [[0, -5, 3], [10, 500, 600], [10, 500, 600], [-1, 500, 600]],
        [100, np.nan, 100, 100],
        pattern,
        threshold_dq=[0, 0, dqflags.NO_SAT_CHECK, dqflags.NO_SAT_CHECK | dqflags.DEAD],
    )
    assert gdq[0].tolist() == [FLOOR, FLOOR, 0]
    assert gdq[1].tolist() == [0, 0, 0]
    assert gdq[2].tolist() == [0, 0, 0]
    assert gdq[3].tolist() == [FLOOR, 0, 0]
    assert pdq.tolist() == [0, dqflags.NO_SAT_CHECK, dqflags.NO_SAT_CHECK,
                            dqflags.NO_SAT_CHECK | dqflags.DEAD]


def test_existing_flags_are_kept():
    cube = np.array([[[5.0]], [[500.0]]], np.float32)
    groupdq = np.full(cube.shape, dqflags.JUMP_DET, np.uint8)
    pixeldq = np.full((1, 1), dqflags.HOT, np.uint32)
    flag_saturation(cube, np.full((1, 1), 100, np.float32), [[1], [2]], groupdq, pixeldq)
    assert groupdq.ravel().tolist() == [dqflags.JUMP_DET, dqflags.JUMP_DET | SAT]
    assert pixeldq[0, 0] == dqflags.HOT


def slow_reference(ramps, thr, pattern):
    out = np.zeros(ramps.shape, np.uint8)
    kbar = [np.mean(r) for r in pattern]
    for p in range(ramps.shape[0]):
        for i in range(ramps.shape[1]):
            if ramps[p, i] <= 0:
                out[p, i] |= FLOOR
        if np.isnan(thr[p]):
            continue
        hits = [i for i in range(ramps.shape[1]) if ramps[p, i] >= thr[p]]
        first = hits[0] if hits else ramps.shape[1]
        out[p, first:] |= SAT
        i = first - 1
        if i == 0:
            bound = thr[p] * kbar[0] / pattern[0][-1]
        elif i > 0:
            r = ramps[p, i - 1]
            bound = r + (thr[p] - r) * (kbar[i] - kbar[i - 1]) / (pattern[i][-1] - kbar[i - 1])
        if i >= 0 and ramps[p, i] >= bound:
            out[p, i] |= SAT
    return out


def test_matches_slow_reference_on_random_ramps():
    rng = np.random.default_rng(3)
    pattern = [[1], [2, 3], [4, 5, 6, 7], [8, 9, 10, 11, 12, 13], [14], [15, 16, 17]]
    npix = 2000
    rates = rng.uniform(-2, 12, npix)
    times = np.array([np.mean(r) for r in pattern])
    ramps = np.minimum(rates[:, None] * times, 120) + rng.normal(0, 3, (npix, len(pattern)))
    ramps = ramps.astype(np.float32)
    thr = rng.uniform(60, 110, npix).astype(np.float32)
    thr[::37] = np.nan
    gdq, _ = run(ramps, thr, pattern)
    expected = slow_reference(ramps, thr, pattern)
    np.testing.assert_array_equal(gdq, expected)
    assert (gdq & dqflags.SATURATED).any() and (gdq & dqflags.AD_FLOOR).any()


def test_rejects_mismatched_pattern():
    cube = np.zeros((2, 1, 1), np.float32)
    with pytest.raises(ValueError, match="read_pattern"):
        flag_saturation(cube, np.zeros((1, 1), np.float32), [[1]], np.zeros(cube.shape, np.uint8),
                        np.zeros((1, 1), np.uint32))


# --------------------------------------------------------------------------------------
# Against read-level ramps (tests/support/readout.py): the truth is which reads reached the
# threshold, known read by read.
PEDESTAL = 5000.0
LEVEL = 0.97 * readout.FULL_WELL  # threshold above the pedestal
PATTERNS = {
    "last of 8 reads, skipped reads": [[1], [3, 4], [6, 7, 8, 9], [11, 12, 13, 14], list(range(16, 24))],
    "last of 4 reads": [[1], [2, 3], [5, 6, 7, 8], [10, 11, 12, 13], [15, 16, 17, 18]],
    "8 resultants of 8 reads": [list(range(1 + 8 * i, 9 + 8 * i)) for i in range(8)],
}


def flagged_ramps(pattern, npix=60_000, seed=5):
    """Rates spread so that the last read ends between 0.4 and 1.6 of the threshold."""
    rng = np.random.default_rng(seed)
    rate = readout.counts_for(LEVEL, pattern) * rng.uniform(0.4, 1.6, npix)
    resultants, reads = readout.ramps(rate, pattern, seed=seed + 1, pedestal=PEDESTAL)
    cube = resultants.reshape(len(pattern), 1, npix)
    gdq = np.zeros(cube.shape, np.uint8)
    flag_saturation(cube, np.full((1, npix), PEDESTAL + LEVEL, np.float32), pattern, gdq,
                    np.zeros((1, npix), np.uint32))
    last_reads = np.array([r[-1] for r in pattern]) - 1
    holds_saturated = reads[last_reads] >= LEVEL  # (nres, npix), per resultant
    return rate, cube, gdq[:, 0], holds_saturated, reads[-1] / LEVEL


@pytest.mark.parametrize("name", PATTERNS)
def test_saturation_inside_any_resultant_is_flagged(name):
    pattern = PATTERNS[name]
    _, cube, gdq, holds, peak = flagged_ramps(pattern)
    flagged = (gdq & SAT) == SAT
    complete = (flagged | ~holds).all(axis=0)  # every resultant holding a saturated read
    saturated = holds[-1]
    # the hard case: saturated within the last resultant whose mean stays below threshold
    inside_last = saturated & (cube[:, 0] < PEDESTAL + LEVEL).all(axis=0)
    assert inside_last.sum() > 1000
    assert complete[inside_last].mean() >= 0.99
    assert complete[saturated].mean() >= 0.99
    # no flag on pixels that stay below 0.95 of the threshold
    assert not flagged[:, peak < 0.95].any()


def test_saturated_pixels_fit_without_bias():
    """Pixels saturating inside a resultant, once flagged, fit as well as any: the ramp fit
    sees the flagged resultants as unusable."""
    pattern = PATTERNS["last of 8 reads, skipped reads"]
    rate, cube, gdq, holds, _ = flagged_ramps(pattern, npix=20_000)
    keep = holds[-1] & ~holds[-3]  # saturated in one of the last two resultants
    cube, gdq, rate = cube[:, :, keep] - PEDESTAL, gdq[:, None, keep].copy(), rate[keep]
    shape = cube.shape[1:]
    correct_linearity(cube, gdq, readout.coefficient_cube(shape), np.zeros(shape, np.uint32), pattern)
    for algorithm in ("likely", "optimal"):
        fit = fit_ramps(cube, gdq, np.full(shape, readout.READ_NOISE, np.float32),
                        np.full(shape, readout.GAIN, np.float32), pattern, readout.FRAME_TIME,
                        algorithm=algorithm)
        z = (fit.slope[0] - rate) / fit.err[0]
        assert abs(np.median(z)) < 0.1, algorithm
        assert np.mean(np.abs(z) > 5) < 0.002, algorithm
