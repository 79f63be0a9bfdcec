"""Ramp fitting: exact properties, DQ rules, edge cases and the array conventions."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calpipe import dqflags
from calpipe.kernels.ramp import RampFit, fit_ramps, resultant_times

ALGORITHMS = ["optimal", "likely"]
FRAME_TIME = 3.04
DNU, SAT, JUMP = dqflags.DO_NOT_USE, dqflags.SATURATED, dqflags.JUMP_DET


@st.composite
def read_patterns(draw, min_resultants=2, max_resultants=10):
    """Mixed single/multi-read resultants with uneven gaps."""
    n = draw(st.integers(min_resultants, max_resultants))
    pattern, read = [], 1
    for _ in range(n):
        read += draw(st.integers(0, 4))
        nr = draw(st.integers(1, 6))
        pattern.append(list(range(read, read + nr)))
        read += nr
    return pattern


def ramp(pattern, flux, offset=0.0, shape=(1, 1)):
    tbar, _, _ = resultant_times(pattern, FRAME_TIME)
    flux = np.broadcast_to(flux, shape)
    return offset + tbar[:, None, None] * flux[None]


def float32_atol(res, pattern, usable=None):
    """How far the slope of ``res`` can move when the kernels read it as float32: each
    resultant rounded by up to half a float32 step of its value, over the shortest time a
    fit may rest on: the ramp's span, or, with ``usable`` given (unusable resultants split
    a ramp into segments), the shortest gap between usable resultants (from the reset for
    a single one)."""
    tbar, _, _ = resultant_times(pattern, FRAME_TIME)
    if usable is None:
        span = tbar[-1] - tbar[0]
    else:
        times = tbar[usable]
        span = np.diff(times).min() if times.size > 1 else times[0]
    return 8 * np.finfo(np.float32).eps * np.nanmax(np.abs(res)) / span


def fit(res, gdq=None, read_noise=5.0, gain=2.0, pattern=None, **kw):
    n, ny, nx = res.shape
    if gdq is None:
        gdq = np.zeros(res.shape, np.uint8)
    return fit_ramps(res, gdq, np.broadcast_to(np.asarray(read_noise, float), (ny, nx)),
                     np.broadcast_to(np.asarray(gain, float), (ny, nx)), pattern, FRAME_TIME, **kw)


# ----------------------------------------------------------------- read pattern
def test_resultant_times():
    tbar, tau, nreads = resultant_times([[1], [2, 3], [5, 6, 7]], 2.0)
    np.testing.assert_allclose(tbar, [2.0, 5.0, 12.0])
    # tau = (t_f / N^2) sum (2N - 2j + 1) k_j
    np.testing.assert_allclose(tau, [2.0, 2.0 / 4 * (3 * 2 + 1 * 3), 2.0 / 9 * (5 * 5 + 3 * 6 + 1 * 7)])
    assert nreads.dtype == np.int32 and list(nreads) == [1, 2, 3]
    assert tbar.dtype == np.float64 and tau.dtype == np.float64


def test_tau_is_the_variance_of_a_mean_of_poisson_reads():
    """tau * f is Var(mean of reads) for a Poisson process: (1/N^2) sum_ab min(t_a, t_b)."""
    reads = [4, 5, 9, 10]
    t = np.array(reads) * FRAME_TIME
    expected = np.minimum.outer(t, t).sum() / len(t) ** 2
    _, tau, _ = resultant_times([[1], reads], FRAME_TIME)
    np.testing.assert_allclose(tau[1], expected)


@pytest.mark.parametrize("pattern", [[], [[]], [[0]], [[2], [1]], [[1, 1]], [[1.5]], [[1], [1, 2]]])
def test_bad_read_patterns(pattern):
    with pytest.raises(ValueError):
        resultant_times(pattern, FRAME_TIME)


def test_bad_frame_time():
    with pytest.raises(ValueError):
        resultant_times([[1]], 0.0)


def test_bad_arguments():
    res = np.zeros((4, 2, 3))
    good = dict(read_noise=np.ones((2, 3)), gain=np.ones((2, 3)))
    pattern = [[1], [2], [3], [4]]
    with pytest.raises(ValueError, match="algorithm"):
        fit_ramps(res, np.zeros((4, 2, 3), np.uint8), **good, read_pattern=pattern,
                  frame_time=1.0, algorithm="ols")
    with pytest.raises(ValueError, match="groupdq"):
        fit_ramps(res, np.zeros((3, 2, 3), np.uint8), **good, read_pattern=pattern, frame_time=1.0)
    with pytest.raises(ValueError, match="gain"):
        fit_ramps(res, np.zeros((4, 2, 3), np.uint8), np.ones((2, 3)), np.ones((3, 2)), pattern, 1.0)
    with pytest.raises(ValueError, match="read_pattern"):
        fit_ramps(res, np.zeros((4, 2, 3), np.uint8), **good, read_pattern=pattern[:3], frame_time=1.0)
    with pytest.raises(ValueError, match="3-D"):
        fit_ramps(res[0], np.zeros((2, 3), np.uint8), **good, read_pattern=pattern, frame_time=1.0)


# ------------------------------------------------------------ exact properties
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=60, deadline=None)
@given(pattern=read_patterns(), flux=st.floats(0.01, 1e4), offset=st.floats(-200, 200),
       read_noise=st.floats(0.5, 30), gain=st.floats(0.5, 5))
def test_noiseless_ramp_exact(algorithm, pattern, flux, offset, read_noise, gain):
    res = ramp(pattern, flux, offset)
    out = fit(res, read_noise=read_noise, gain=gain, pattern=pattern, algorithm=algorithm,
              return_jumps=True)
    np.testing.assert_allclose(out.slope, flux, rtol=1e-6, atol=float32_atol(res, pattern))
    assert out.dq[0, 0] == 0
    assert not out.jumps.any()
    np.testing.assert_allclose(out.err**2, out.var_poisson + out.var_rnoise, rtol=1e-6)
    assert out.var_poisson[0, 0] > 0 and out.var_rnoise[0, 0] > 0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=60, deadline=None)
@given(pattern=read_patterns(), flux=st.floats(0.1, 1e3), data=st.data())
def test_dq_propagation(algorithm, pattern, flux, data):
    """Saturated tail, DO_NOT_USE and NaN resultants: excluded, flags as documented."""
    n = len(pattern)
    res = ramp(pattern, flux)  # counts start at 0 at reset: every rule gives the exact slope
    gdq = np.zeros(res.shape, np.uint8)
    first_sat = data.draw(st.integers(0, n))
    gdq[first_sat:] |= SAT
    dnu = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    gdq[np.array(dnu), 0, 0] |= DNU
    nan = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    res[np.array(nan), 0, 0] = np.nan
    usable = (gdq[:, 0, 0] & (DNU | SAT) == 0) & ~np.array(nan)
    out = fit(res, gdq, pattern=pattern, algorithm=algorithm)
    expected_dq = SAT if first_sat < n else 0
    if usable.any():
        np.testing.assert_allclose(out.slope, flux, rtol=1e-6, atol=float32_atol(res, pattern, usable))
        assert out.err[0, 0] > 0
    else:
        expected_dq |= DNU
        assert out.slope[0, 0] == 0 and out.err[0, 0] == 0
        assert out.var_poisson[0, 0] == 0 and out.var_rnoise[0, 0] == 0
    assert out.dq[0, 0] == expected_dq


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=40, deadline=None)
@given(pattern=read_patterns(min_resultants=3), seed=st.integers(0, 2**31),
       jump=st.floats(-1e6, 1e6), k=st.integers(1, 9), where=st.tuples(st.integers(0, 2), st.integers(0, 3)))
def test_jump_in_one_pixel_leaves_others_alone(algorithm, pattern, seed, jump, k, where):
    rng = np.random.default_rng(seed)
    res = ramp(pattern, rng.uniform(0, 500, (3, 4)), shape=(3, 4)) + rng.normal(0, 5, (len(pattern), 3, 4))
    before = fit(res, pattern=pattern, algorithm=algorithm, block_rows=2)
    hit = res.copy()
    hit[min(k, len(pattern) - 1):, where[0], where[1]] += jump
    after = fit(hit, pattern=pattern, algorithm=algorithm, block_rows=2)
    others = np.ones((3, 4), bool)
    others[where] = False
    for name in ("slope", "var_poisson", "var_rnoise", "err", "dq"):
        np.testing.assert_array_equal(getattr(after, name)[others], getattr(before, name)[others])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=60, deadline=None)
@given(pattern=read_patterns(min_resultants=4), flux=st.floats(0.0, 1e3),
       read_noise=st.floats(1, 20), size=st.floats(100, 1e4), sign=st.sampled_from([1, -1]),
       data=st.data())
def test_large_jump_removed(algorithm, pattern, flux, read_noise, size, sign, data):
    """A large jump in one resultant: the pieces either side give the true slope."""
    n = len(pattern)
    if algorithm == "optimal" and sign < 0:
        sign = 1  # the optimal search looks for charge added (cosmic rays) only
    k = data.draw(st.integers(1, n - 1))
    res = ramp(pattern, flux)
    # Large against the noise of any difference: read noise plus the Poisson noise of
    # the whole ramp (DN, gain 2).
    noise = read_noise + np.sqrt(flux * FRAME_TIME * pattern[-1][-1] / 2.0)
    res[k:] += sign * size * noise
    out = fit(res, read_noise=read_noise, pattern=pattern, algorithm=algorithm, return_jumps=True)
    if sign < 0:
        # Charge lost is no cosmic ray: no piece of the ramp is known to be clean, and
        # the pixel is flagged rather than fitted to whichever side is kept.
        assert out.dq[0, 0] & (dqflags.UNRELIABLE_SLOPE | DNU) == dqflags.UNRELIABLE_SLOPE | DNU
        return
    np.testing.assert_allclose(out.slope, flux, rtol=1e-6, atol=1e-9 * size * noise + float32_atol(res, pattern))
    assert out.dq[0, 0] == JUMP
    if algorithm == "likely":
        assert out.jumps[k, 0, 0] == JUMP
    else:
        assert out.jumps[k - 1, 0, 0] == JUMP or out.jumps[k, 0, 0] == JUMP


# ------------------------------------------------------------------ edge cases
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_no_usable_resultant(algorithm):
    pattern = [[1], [2], [3, 4], [5]]
    res = ramp(pattern, 10.0)
    gdq = np.full(res.shape, DNU, np.uint8)
    gdq[2] = SAT
    out = fit(res, gdq, pattern=pattern, algorithm=algorithm)
    assert out.dq[0, 0] == DNU | SAT
    assert out.slope[0, 0] == 0 and out.err[0, 0] == 0 and out.var_rnoise[0, 0] == 0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_usable_resultant(algorithm):
    pattern = [[1, 2, 3], [4], [5, 6], [7]]
    tbar, tau, nreads = resultant_times(pattern, FRAME_TIME)
    res = ramp(pattern, 40.0) + 3.0
    gdq = np.zeros(res.shape, np.uint8)
    gdq[1:] = SAT
    rn, gain = 4.0, 2.5
    out = fit(res, gdq, read_noise=rn, gain=gain, pattern=pattern, algorithm=algorithm)
    slope = res[0, 0, 0] / tbar[0]
    np.testing.assert_allclose(out.slope[0, 0], slope, rtol=1e-6)
    # In electrons: Var R = s^2 / N + f tau, slope = R / tbar.
    np.testing.assert_allclose(out.var_rnoise[0, 0], (rn * gain) ** 2 / 3 / tbar[0] ** 2 / gain**2, rtol=1e-6)
    np.testing.assert_allclose(out.var_poisson[0, 0], slope * gain * tau[0] / tbar[0] ** 2 / gain**2, rtol=1e-6)
    assert out.dq[0, 0] == SAT


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_two_usable_resultants(algorithm):
    pattern = [[1], [2, 3, 4], [5, 6], [7], [8]]
    tbar, tau, nreads = resultant_times(pattern, FRAME_TIME)
    rng = np.random.default_rng(0)
    res = ramp(pattern, 25.0) + rng.normal(0, 3, (5, 1, 1))
    gdq = np.zeros(res.shape, np.uint8)
    gdq[0] = DNU
    gdq[3:] = SAT
    rn, gain = 5.0, 2.0
    out = fit(res, gdq, read_noise=rn, gain=gain, pattern=pattern, algorithm=algorithm)
    dt = tbar[2] - tbar[1]
    slope = (res[2, 0, 0] - res[1, 0, 0]) / dt
    np.testing.assert_allclose(out.slope[0, 0], slope, rtol=1e-6)
    np.testing.assert_allclose(out.var_rnoise[0, 0], rn**2 * (1 / 3 + 1 / 2) / dt**2, rtol=1e-6)
    np.testing.assert_allclose(out.var_poisson[0, 0],
                               slope / gain * (tau[1] + tau[2] - 2 * tbar[1]) / dt**2, rtol=1e-6)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("flux", [0.0, -3.0])
def test_zero_and_negative_flux(algorithm, flux):
    pattern = [[1], [2, 3], [4, 5, 6], [7], [8, 9]]
    out = fit(ramp(pattern, flux, offset=2.0), pattern=pattern, algorithm=algorithm)
    np.testing.assert_allclose(out.slope[0, 0], flux, atol=1e-9)
    vr, vp = out.var_rnoise[0, 0], out.var_poisson[0, 0]
    assert vr > 0
    # The Poisson variance follows the slope through zero (its expectation is the true
    # one at zero flux), never below half the read-noise variance in magnitude.
    if flux == 0.0:
        assert abs(vp) <= 1e-6 * vr
    else:
        assert -vr / 2 <= vp < 0
    np.testing.assert_allclose(out.err[0, 0], np.sqrt(vr + vp), rtol=1e-6)
    assert out.dq[0, 0] == 0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bad_gain_or_read_noise(algorithm):
    pattern = [[1], [2], [3], [4], [5]]
    res = ramp(pattern, 10.0, shape=(1, 7))
    gdq = np.zeros(res.shape, np.uint8)
    gdq[4:, 0, 6] = SAT
    gain = np.array([[2.0, np.nan, 0.0, -1.0, 2.0, 2.0, np.nan]])
    rn = np.array([[5.0, 5.0, 5.0, 5.0, np.nan, 0.0, 5.0]])
    out = fit_ramps(res, gdq, rn, gain, pattern, FRAME_TIME, algorithm=algorithm)
    np.testing.assert_allclose(out.slope[0, 0], 10.0, rtol=1e-6)
    assert out.dq[0, 0] == 0
    bad = dqflags.NO_GAIN_VALUE | DNU
    np.testing.assert_array_equal(out.dq[0, 1:], [bad] * 5 + [bad | SAT])
    for name in ("slope", "var_poisson", "var_rnoise", "err"):
        assert not getattr(out, name)[0, 1:].any()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nan_resultants_are_skipped(algorithm):
    pattern = [[1], [2], [3, 4], [5], [6, 7], [8]]
    res = ramp(pattern, 7.0, shape=(1, 2))
    res[2, 0, 0] = np.nan
    res[:, 0, 1] = np.nan
    out = fit(res, pattern=pattern, algorithm=algorithm)
    np.testing.assert_allclose(out.slope[0, 0], 7.0, rtol=1e-6)
    assert out.dq[0, 0] == 0
    assert out.dq[0, 1] == DNU and out.slope[0, 1] == 0
    assert np.isfinite(out.err).all()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_even_jwst_groups(algorithm):
    """Evenly spaced groups of 4 frames: exact slope, and the same as an uneven spelling."""
    pattern = [[4 * g + 1 + k for k in range(4)] for g in range(6)]
    rng = np.random.default_rng(4)
    res = ramp(pattern, 30.0, shape=(2, 3)) + rng.normal(0, 4, (6, 2, 3))
    out = fit(res, pattern=pattern, algorithm=algorithm)
    exact = fit(ramp(pattern, 30.0), pattern=pattern, algorithm=algorithm)
    np.testing.assert_allclose(exact.slope, 30.0, rtol=1e-6)
    assert np.all(np.abs(out.slope - 30.0) < 5 * out.err)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("seed", [0, 1])
def test_chunk_path_matches_per_pixel_path(algorithm, seed):
    """The kernels fit pixels with every resultant usable a chunk at a time, the others
    one by one. A trailing DO_NOT_USE resultant sends a pixel down the per-pixel path
    and must give the same answer as the ramp without that resultant, which takes the
    chunk path: same arithmetic, whatever the pixel's place in its chunk or row."""
    from calpipe.kernels.ramp import CHUNK

    rng = np.random.default_rng(seed)
    pattern = [[1], [2, 3], [4, 5, 6, 7], [8], [9, 10, 11], [12, 13], [14], [15, 16, 17]]
    n, ny, nx = len(pattern), 3, CHUNK + 37
    flux = 10 ** rng.uniform(-1, 4, (ny, nx))
    res = ramp(pattern, flux, shape=(ny, nx)) + rng.normal(0, 6, (n, ny, nx))
    # Jumps in a fifth of the pixels, from a random resultant on.
    size = np.where(rng.random((ny, nx)) < 0.2, 10 ** rng.uniform(1, 4, (ny, nx)), 0.0)
    res += (np.arange(n)[:, None, None] >= rng.integers(1, n, (ny, nx))) * size
    rn = rng.uniform(3, 8, (ny, nx))
    gain = rng.uniform(1, 3, (ny, nx))
    extra = np.concatenate([res, rng.normal(0, 1e4, (1, ny, nx))])
    gdq = np.zeros(extra.shape, np.uint8)
    gdq[-1] = DNU
    tail = fit_ramps(extra, gdq, rn, gain, pattern + [[30]], FRAME_TIME, algorithm=algorithm,
                     return_jumps=True)
    plain = fit_ramps(res, np.zeros(res.shape, np.uint8), rn, gain, pattern, FRAME_TIME,
                      algorithm=algorithm, return_jumps=True)
    assert (plain.dq & JUMP).any() and not (plain.dq & JUMP).all()
    for name in ("slope", "var_poisson", "var_rnoise", "err", "dq"):
        np.testing.assert_allclose(getattr(tail, name), getattr(plain, name), rtol=1e-6, atol=0)
    np.testing.assert_array_equal(tail.jumps[:-1], plain.jumps)


def test_likely_falls_back_to_optimal_below_four_resultants():
    pattern = [[1], [2, 3], [4, 5, 6]]
    rng = np.random.default_rng(1)
    res = ramp(pattern, 50.0, shape=(2, 5)) + rng.normal(0, 5, (3, 2, 5))
    a = fit(res, pattern=pattern, algorithm="likely", return_jumps=True)
    b = fit(res, pattern=pattern, algorithm="optimal", return_jumps=True)
    for name in ("slope", "var_poisson", "var_rnoise", "err", "dq", "jumps"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_jump_threshold_and_switch(algorithm):
    pattern = [[1], [2], [3], [4], [5], [6], [7], [8]]
    res = ramp(pattern, 5.0)
    res[4:] += 60.0  # 12 x the read noise
    found = fit(res, pattern=pattern, algorithm=algorithm)
    off = fit(res, pattern=pattern, algorithm=algorithm, detect_jumps=False)
    high = fit(res, pattern=pattern, algorithm=algorithm, jump_threshold=50.0)
    assert found.dq[0, 0] == JUMP
    np.testing.assert_allclose(found.slope, 5.0, rtol=1e-6)
    assert off.dq[0, 0] == 0 and off.slope[0, 0] > 6.0
    assert high.dq[0, 0] == 0
    assert found.jumps is None


# --------------------------------------------------------- array conventions
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_views_memmaps_dtypes_and_blocks(algorithm, tmp_path):
    """A strided view, a memory map, float64 input and any block size give one answer."""
    pattern = [[1], [2, 3], [4, 5, 6, 7], [8], [9, 10], [11]]
    rng = np.random.default_rng(2)
    n, ny, nx = 6, 13, 17
    cube = (ramp(pattern, rng.uniform(0, 300, (ny, nx)), shape=(ny, nx))
            + rng.normal(0, 5, (n, ny, nx))).astype(np.float32)
    cube[3:, 5, 5] += 500.0
    gdq = np.zeros(cube.shape, np.uint8)
    gdq[4:, 2, 3] = SAT
    rn = rng.uniform(3, 8, (ny, nx)).astype(np.float32)
    gain = rng.uniform(1, 3, (ny, nx)).astype(np.float32)
    ref = fit_ramps(cube, gdq, rn, gain, pattern, FRAME_TIME, algorithm=algorithm, return_jumps=True)
    assert isinstance(ref, RampFit)
    assert ref.dq[5, 5] & JUMP and ref.dq[2, 3] == SAT
    for name, dtype in (("slope", np.float32), ("var_poisson", np.float32), ("var_rnoise", np.float32),
                        ("err", np.float32), ("dq", np.uint32), ("jumps", np.uint8)):
        assert getattr(ref, name).dtype == dtype

    big = np.zeros((n, ny + 8, nx + 8), np.float32)
    big[:, 4:-4, 4:-4] = cube
    bigdq = np.zeros(big.shape, np.uint8)
    bigdq[:, 4:-4, 4:-4] = gdq
    path = tmp_path / "cube.dat"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=big.shape)
    mm[:] = big
    mm.flush()
    mm = np.memmap(path, dtype=np.float32, mode="r", shape=big.shape)
    cases = ((big[:, 4:-4, 4:-4], bigdq[:, 4:-4, 4:-4], 4, 0.0),
             (mm[:, 4:-4, 4:-4], bigdq[:, 4:-4, 4:-4], 1, 0.0),
             (cube.astype(np.float64), gdq, 256, 1e-5))
    for data, dq, rows, rtol in cases:
        out = fit_ramps(data, dq, rn, gain, pattern, FRAME_TIME, algorithm=algorithm,
                        return_jumps=True, block_rows=rows)
        for name in ("slope", "var_poisson", "var_rnoise", "err", "dq", "jumps"):
            np.testing.assert_allclose(getattr(out, name), getattr(ref, name), rtol=rtol)

    # Integer data and group DQ of another integer type are converted block by block.
    whole = np.round(cube)
    out = fit_ramps(whole.astype(np.int32), gdq.astype(np.int16), rn, gain, pattern, FRAME_TIME,
                    algorithm=algorithm, block_rows=3)
    expected = fit_ramps(whole, gdq, rn, gain, pattern, FRAME_TIME, algorithm=algorithm)
    np.testing.assert_array_equal(out.slope, expected.slope)
    np.testing.assert_array_equal(out.dq, expected.dq)


def test_rows_released_as_they_are_fitted_change_no_result():
    """ramp_fit in a pipeline gives back each block of fitted rows: ``rows_done`` comes after
    the block's last read, so the fit is the one of an untouched cube."""
    from calpipe.memory import RELEASES, releasable, release_rows

    pattern = [[1], [2, 3], [4, 5, 6, 7], [8], [9, 10], [11, 12, 13]]
    rng = np.random.default_rng(5)
    n, ny, nx = len(pattern), 24, 1024  # a float32 row is a page
    res = ramp(pattern, 10 ** rng.uniform(0, 3, (ny, nx)), shape=(ny, nx)) + rng.normal(0, 5, (n, ny, nx))
    res[3:, :, ::7] += 500.0  # jumps
    cube = releasable(res.shape, np.float32)
    cube[...] = res
    gdq = releasable(res.shape, np.uint8)
    blocks = []

    def done(r0, r1):
        blocks.append((r0, r1))
        release_rows(cube, r0, r1)
        release_rows(gdq, r0, r1)

    kept = cube.copy()
    rn, gain = np.full((ny, nx), 5.0), np.full((ny, nx), 2.0)
    released = fit_ramps(cube, gdq, rn, gain, pattern, FRAME_TIME, block_rows=5, rows_done=done)
    plain = fit_ramps(kept, np.zeros(res.shape, np.uint8), rn, gain, pattern, FRAME_TIME, block_rows=5)
    assert blocks == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 24)]
    for name in ("slope", "var_poisson", "var_rnoise", "err", "dq"):
        np.testing.assert_array_equal(getattr(released, name), getattr(plain, name))
    assert (plain.dq & JUMP).any()
    assert not cube.any() if RELEASES else (cube == kept).all()


def test_windows_of_a_cube_are_read_in_place_and_the_rest_converted():
    from calpipe.kernels.ramp import _whole_cube
    from calpipe.memory import releasable

    for cube in (np.zeros((3, 20, 30), np.float32), releasable((3, 20, 30), np.float32)):
        whole, row0, col0 = _whole_cube(cube[:, 4:-4, 5:-3])
        assert whole.shape == cube.shape and (row0, col0) == (4, 5)
        whole[1, 6, 7] = 9.0  # the same memory
        assert cube[1, 6, 7] == 9.0
        assert _whole_cube(cube)[0] is cube
    big = np.arange(5 * 20 * 30, dtype=np.float32).reshape(5, 20, 30)
    assert _whole_cube(big[1:4, 4:-4, 4:-4]) is None  # not the start of its memory
    assert _whole_cube(big[:, :, ::-1]) is None
    every_other_row = big[:, ::2, 4:-4]  # a window of a cube of 60-pixel rows
    whole, row0, col0 = _whole_cube(every_other_row)
    np.testing.assert_array_equal(whole[:, row0:row0 + 10, col0:col0 + 22], every_other_row)
    assert _whole_cube(big.astype(np.float64)[:, 4:-4, 4:-4]) is None
    frozen = big.copy()
    frozen.flags.writeable = False
    assert _whole_cube(frozen[:, 4:-4, 4:-4]) is None


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_compiled_cube_type_serves_every_input(algorithm, tmp_path):
    # Views, memory maps, other dtypes: the kernel is compiled for C-ordered float32 cubes only.
    from calpipe.kernels import ramp_likely, ramp_optimal

    test_views_memmaps_dtypes_and_blocks(algorithm, tmp_path)
    kernel = {"optimal": ramp_optimal, "likely": ramp_likely}[algorithm].fit_block
    # (worker, nworkers, resultants, ...)
    assert {str(signature[2]) for signature in kernel.signatures} == {"array(float32, 3d, C)"}
