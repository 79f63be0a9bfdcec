import numpy as np
import pytest

from calpipe.kernels.refpix import correct_refpix, refpix_offsets

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
