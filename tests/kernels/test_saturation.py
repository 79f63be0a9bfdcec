import numpy as np
import pytest

from calpipe import dqflags
from calpipe.kernels.saturation import dilution_factors, flag_saturation

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


def test_dilution_factors():
    np.testing.assert_allclose(dilution_factors([[1], [2, 3, 4], [5, 6]]), [1.0, 0.75, 5.5 / 6])


def test_saturates_from_first_crossing_onwards():
    pattern = [[1], [2], [3], [4]]
    gdq, pdq = run([[10, 50, 120, 90], [10, 20, 30, 40], [100, 200, 300, 400]], [100, 100, 100], pattern)
    assert gdq[0].tolist() == [0, 0, SAT, SAT]  # a later lower value is still saturated
    assert gdq[1].tolist() == [0, 0, 0, 0]
    assert gdq[2].tolist() == [SAT] * 4  # reaching the threshold exactly counts
    assert pdq.tolist() == [0, 0, 0]


def test_resultant_before_uses_diluted_threshold():
    pattern = [[1], [2, 3, 4], [5]]
    # threshold 100 * 3/4 = 75 for the three-read resultant
    gdq, _ = run([[10, 80, 120], [10, 70, 120], [10, 80, 99]], [100, 100, 100], pattern)
    assert gdq[0].tolist() == [0, SAT, SAT]
    assert gdq[1].tolist() == [0, 0, SAT]
    assert gdq[2].tolist() == [0, 0, 0]  # no saturated successor: not tested against 75


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
    dil = [np.mean(r) / r[-1] for r in pattern]
    for p in range(ramps.shape[0]):
        for i in range(ramps.shape[1]):
            if ramps[p, i] <= 0:
                out[p, i] |= FLOOR
        if np.isnan(thr[p]):
            continue
        hits = [i for i in range(ramps.shape[1]) if ramps[p, i] >= thr[p]]
        if hits:
            first = hits[0]
            out[p, first:] |= SAT
            if first > 0 and ramps[p, first - 1] >= thr[p] * dil[first - 1]:
                out[p, first - 1] |= SAT
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
