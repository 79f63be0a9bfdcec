import numpy as np
import pytest

from support.refpix_darks import CHANNELS, PATTERN, READ_NOISE, SIZE, dark_exposure

from calpipe.kernels.refpix import correct_refpix, read_noise_with_refpix, refpix_offsets, refpix_variance, shift_bias

N, NRES, B, NCH = 64, 3, 4, 8


def make_cube(rng, noise=0.0, row_mode=None):
    """Resultants = signal + per-channel bias + row common mode + noise; returns (cube, signal, bias)."""
    signal = np.zeros((NRES, N, N))
    signal[:, B:-B, B:-B] = rng.uniform(0, 1000, (NRES, N - 2 * B, N - 2 * B))
    pedestal = rng.uniform(3000, 7000, NCH)
    drift = rng.normal(0, 20, (NRES, NCH))
    bias = np.repeat(pedestal + drift, N // NCH, axis=1)[:, None, :]  # (NRES, 1, N)
    rows = np.zeros((NRES, N, 1)) if row_mode is None else row_mode[:, :, None]
    bias = bias + rows
    cube = signal + bias + rng.normal(0, noise, signal.shape)
    return cube.astype(np.float32), signal, bias


def test_exact_for_channel_drifts_and_linear_row_trend():
    rng = np.random.default_rng(1)
    y = np.arange(N)
    row_mode = np.array([0.3 * y - 5, -0.2 * y + 2, 0.1 * y])
    cube, signal, _ = make_cube(rng, row_mode=row_mode)
    correct_refpix(cube, border=B, nchannels=NCH)
    # the offset is defined up to a constant common to the whole resultant: the mean of the
    # row trend over the top and bottom reference rows, which the channel step absorbs
    # and the row step then restores; so the science pixels are exact
    np.testing.assert_allclose(cube[:, B:-B, B:-B], signal[:, B:-B, B:-B], atol=0.02)
    np.testing.assert_allclose(cube[:, :B, :], 0, atol=0.02)


def test_noise_limited_and_robust_to_bad_reference_pixels():
    rng = np.random.default_rng(2)
    y = np.arange(N)
    row_mode = np.array([8 * np.sin(2 * np.pi * y / 400 + p) for p in (0.0, 1.0, 2.0)])
    cube, signal, bias = make_cube(rng, noise=5.0, row_mode=row_mode)
    cube[1, 0, 3] += 20000  # hot reference pixels must not drag their channel or row
    cube[2, 30, N - 2] -= 20000
    channel, row = refpix_offsets(cube, border=B, nchannels=NCH)
    estimate = np.repeat(channel, N // NCH, axis=1)[:, None, :] + row[:, :, None]
    error = estimate - bias  # (NRES, N, N)
    # channel term: 5 DN / sqrt(64 reference pixels) ~ 0.6 DN, plus the two edge channels'
    # error carried into every row by the row step: ~0.8 DN in all
    per_channel = error[:, B:-B, :].mean(axis=1).reshape(NRES, NCH, N // NCH).mean(axis=2)
    assert np.sqrt((per_channel**2).mean()) < 1.2
    assert np.abs(per_channel).max() < 3.2
    # row term: 5 DN / sqrt(8 columns x 11 rows) ~ 0.5 DN per row
    per_row = error.mean(axis=2)
    assert np.sqrt((per_row**2).mean()) < 1.0
    assert np.abs(per_row).max() < 2.5
    correct_refpix(cube, border=B, nchannels=NCH)
    diff = cube[:, B:-B, B:-B] - signal[:, B:-B, B:-B]
    assert abs(diff.mean()) < 0.5
    assert diff.std() == pytest.approx(5.0, rel=0.1)


def test_validates_geometry():
    with pytest.raises(ValueError, match="channels"):
        correct_refpix(np.zeros((1, 64, 64), np.float32), nchannels=5)
    with pytest.raises(ValueError, match="3-D"):
        correct_refpix(np.zeros((64, 64), np.float32))


# Noise of the estimates, against the read-level dark exposures of tests/support/refpix_darks.py.


def test_refpix_variance_is_the_scatter_of_the_estimates():
    nreads = np.array([len(r) for r in PATTERN])[:, None, None]
    width = SIZE // CHANNELS
    ratios, fractions = [], []
    for seed in range(30):
        cube, bias = dark_exposure(seed)
        channel, row = refpix_offsets(cube, border=B, nchannels=CHANNELS)
        error = np.repeat(channel, width, axis=1)[:, None, :] + row[:, :, None] - bias
        var_channel, var_row = refpix_variance(cube, PATTERN, border=B, nchannels=CHANNELS)
        per_read = np.repeat(var_channel, width)[None, :] + var_row[:, None]
        sci = (slice(None), slice(B, -B), slice(B, -B))
        ratios.append(np.mean(error[sci] ** 2 * nreads / per_read[None, B:-B, B:-B]))
        fractions.append(per_read[B:-B, B:-B].mean() / READ_NOISE**2)
    # channel width 32: 1/256 of the read variance per channel offset, 1 + 1/2 of that for the
    # inner channels and 1/2 for the first and last (1.25 on average over 8), and about
    # 1/88 for the rows (8 columns, 11 rows)
    assert np.mean(fractions) == pytest.approx(1.25 / 256 + 1 / 88, rel=0.05)
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.1)


def test_refpix_variance_makes_zero_flux_errors_honest():
    """Slopes of dark pixels: with the refpix variance added to the read noise the spread of
    (slope - 0) / err is that of the same ramps with their true bias removed; without it,
    about 1 % more (1024 columns, 32 channels). (The fit's own err at exactly zero flux is
    a little too large, hence the comparison with the true-bias fit rather than with 1.)"""
    from calpipe.kernels.ramp import fit_ramps

    size = 1024
    cube, bias = dark_exposure(7, size=size, nchannels=32)
    true_bias_free = cube - bias
    channel, row = refpix_variance(cube, PATTERN, border=B, nchannels=32)
    correct_refpix(cube, border=B, nchannels=32)
    sci = (slice(None), slice(B, -B), slice(B, -B))
    extra = (np.repeat(channel, size // 32)[None, :] + row[:, None])[sci[1:]]
    shape = extra.shape
    gain = np.full(shape, 2.0, np.float32)
    spreads = {}
    for name, data, variance in (("truth", true_bias_free, 0.0), ("refpix", cube, 0.0), ("refpix+var", cube, extra)):
        noise = np.broadcast_to(np.sqrt(READ_NOISE**2 + 1 / 12 + variance), shape).astype(np.float32)
        fit = fit_ramps(np.ascontiguousarray(data[sci], dtype=np.float32), np.zeros((len(PATTERN), *shape), np.uint8),
                        noise, gain, PATTERN, 3.04, algorithm="optimal", detect_jumps=False)
        z = fit.slope / fit.err
        spreads[name] = 1.4826 * np.median(np.abs(z - np.median(z)))
    assert spreads["refpix"] > spreads["truth"] * 1.005
    assert spreads["refpix+var"] == pytest.approx(spreads["truth"], abs=0.003)


def test_nan_reference_pixels_are_left_out():
    """NaN in a float ramp's border must not shift the image: the estimate ignores them."""
    rng = np.random.default_rng(7)
    cube = (1000.0 + rng.normal(0, 2.0, (3, 64, 64))).astype(np.float32)
    clean = cube.copy()
    cube[1, 0, 5] = cube[2, 30, 1] = cube[0, 63, 40] = np.nan
    channel_nan, row_nan = refpix_offsets(cube, border=4, nchannels=4)
    channel, row = refpix_offsets(clean, border=4, nchannels=4)
    assert np.isfinite(channel_nan).all() and np.isfinite(row_nan).all()
    np.testing.assert_allclose(channel_nan, channel, atol=0.5)
    np.testing.assert_allclose(row_nan, row, atol=1.0)


def test_read_noise_with_refpix_adds_variances_per_channel_and_row():
    noise = read_noise_with_refpix(np.full((8, 8), 3.0), [1.0, 7.0], np.arange(8.0))
    assert noise.dtype == np.float32
    np.testing.assert_allclose(noise[2, 1] ** 2, 9.0 + 1.0 + 2.0, rtol=1e-6)
    np.testing.assert_allclose(noise[5, 6] ** 2, 9.0 + 7.0 + 5.0, rtol=1e-6)


def test_read_noise_with_refpix_is_the_whole_frame_formula_block_by_block():
    rng = np.random.default_rng(2)
    read_noise = rng.uniform(3, 8, (600, 64)).astype(np.float32)  # more rows than one block
    channel, row = rng.uniform(0, 2, 4), rng.uniform(0, 3, 600)
    whole = np.sqrt(read_noise.astype(np.float64) ** 2 + np.repeat(channel, 16)[None, :] + row[:, None])
    np.testing.assert_array_equal(read_noise_with_refpix(read_noise, channel, row), whole.astype(np.float32))


def test_refpix_variance_ignores_a_fixed_bias_pattern():
    """A real detector's bias differs from pixel to pixel by hundreds of DN, the same in every
    read: it is no noise, and adding it changes no estimate."""
    cube, _ = dark_exposure(3)
    pattern = np.random.default_rng(3).normal(0, 300, cube.shape[1:]).astype(np.float32)
    plain = refpix_variance(cube, PATTERN, border=B, nchannels=CHANNELS)
    patterned = refpix_variance(cube + pattern, PATTERN, border=B, nchannels=CHANNELS)
    for a, b in zip(plain, patterned):
        np.testing.assert_allclose(b, a, rtol=1e-6)


def test_the_bias_shift_adds_and_removes_channel_and_row_levels():
    rng = np.random.default_rng(2)
    n, ny, nx, nchannels = 3, 20, 16, 4
    data = rng.normal(0, 10, (n, ny, nx)).astype(np.float32)
    bias = {"channel": rng.normal(12000, 50, (n, nchannels)), "row": rng.normal(0, 3, (n, ny))}
    level = (np.repeat(bias["channel"], nx // nchannels, axis=1)[:, None, :] + bias["row"][:, :, None])
    shifted = data.copy()
    shift_bias(shifted, bias["channel"], bias["row"], add=True)
    np.testing.assert_allclose(shifted, data + level, rtol=0, atol=2e-3)
    shift_bias(shifted, bias["channel"], bias["row"])
    np.testing.assert_allclose(shifted, data, rtol=0, atol=2e-3)
