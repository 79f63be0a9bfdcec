import numpy as np
import pytest

from calpipe import dqflags
from calpipe.kernels.image import apply_flat, dark_scale, subtract_dark


def test_dark_scale():
    assert dark_scale(95.0, 100.0, 2.0, 5.0) == pytest.approx(2.0)
    assert dark_scale(95.0, 90.0, 2.0, 5.0) == pytest.approx(0.5)
    assert dark_scale(95.0, 95.0, 3.0, 1.0) == 1.0
    assert dark_scale(90.0, 91.0, 1.2, 2.0) == pytest.approx(1.2**0.5)
    with pytest.raises(ValueError):
        dark_scale(90, 91, 1.2, 0)


def test_subtract_dark():
    data = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    dq = np.zeros((2, 2), np.uint32)
    dark = np.array([[0.5, np.nan], [0.25, 1.0]], np.float32)
    ddq = np.array([[0, 0], [dqflags.HOT, 0]], np.uint32)
    subtract_dark(data, dq, dark, ddq, scale=2.0)
    np.testing.assert_allclose(data, [[0.0, 2.0], [2.5, 2.0]])
    assert dq.tolist() == [[0, dqflags.UNRELIABLE_DARK], [dqflags.HOT, 0]]


def test_apply_flat():
    data = np.array([[10.0, 10.0, 10.0, 10.0]], np.float32)
    vp = np.full((1, 4), 4.0, np.float32)
    vr = np.full((1, 4), 1.0, np.float32)
    err = np.zeros((1, 4), np.float32)
    dq = np.zeros((1, 4), np.uint32)
    flat = np.array([[2.0, 0.5, 0.0, np.nan]], np.float32)
    flat_err = np.array([[0.2, 0.05, 0.1, 0.1]], np.float32)
    fdq = np.array([[0, dqflags.LOW_QE, 0, 0]], np.uint32)
    var_flat = apply_flat(data, vp, vr, err, dq, flat, flat_err, fdq)
    np.testing.assert_allclose(data, [[5.0, 20.0, 10.0, 10.0]])
    np.testing.assert_allclose(vp, [[1.0, 16.0, 4.0, 4.0]])
    np.testing.assert_allclose(vr, [[0.25, 4.0, 1.0, 1.0]])
    # var_flat = data^2 (flat_err / flat)^2 = 25 * 0.01 and 400 * 0.01
    np.testing.assert_allclose(var_flat, [[0.25, 4.0, 0.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(err, np.sqrt([[1.5, 24.0, 5.0, 5.0]]), rtol=1e-6)
    assert dq.tolist() == [[0, dqflags.LOW_QE, dqflags.NO_FLAT_FIELD, dqflags.NO_FLAT_FIELD]]


def test_apply_flat_without_errors():
    data = np.full((2, 2), 3.0, np.float32)
    vp, vr, err = (np.ones((2, 2), np.float32) for _ in range(3))
    dq = np.zeros((2, 2), np.uint32)
    var_flat = apply_flat(data, vp, vr, err, dq, np.full((2, 2), 1.5, np.float32))
    np.testing.assert_allclose(data, 2.0)
    assert (var_flat == 0).all()
    np.testing.assert_allclose(err, np.sqrt(2 / 2.25))


def test_shape_mismatch():
    a = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="dark_rate"):
        subtract_dark(a, np.zeros((2, 2), np.uint32), np.zeros((3, 2), np.float32))


def test_apply_flat_in_blocks_matches_the_whole_image_formula(monkeypatch):
    import calpipe.kernels.image as image

    monkeypatch.setattr(image, "FLAT_BLOCK_ROWS", 7)  # 50 rows: 8 blocks, the last one short
    rng = np.random.default_rng(3)
    shape = (50, 33)
    data = rng.normal(100, 30, shape).astype(np.float32)
    vp, vr = (rng.uniform(1, 5, shape).astype(np.float32) for _ in range(2))
    flat = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    flat.flat[::17] = np.nan
    flat.flat[::23] = -1
    flat_err = rng.uniform(0, 0.05, shape).astype(np.float32)
    flat_err.flat[::29] = np.inf
    dq = np.zeros(shape, np.uint32)
    good = np.isfinite(flat) & (flat > 0)
    safe = np.where(good, flat, np.float32(1))
    want_data = data / safe
    want_vp, want_vr = vp / safe**2, vr / safe**2
    rel = np.where(good & np.isfinite(flat_err), flat_err / safe, 0).astype(np.float32)
    want_flat = np.nan_to_num((want_data * rel) ** 2, nan=0, posinf=0)
    err = np.zeros(shape, np.float32)
    var_flat = apply_flat(data, vp, vr, err, dq, flat, flat_err)
    np.testing.assert_array_equal(data, want_data)
    np.testing.assert_array_equal(vp, want_vp)
    np.testing.assert_array_equal(vr, want_vr)
    np.testing.assert_array_equal(var_flat, want_flat)
    np.testing.assert_array_equal(err, np.sqrt(want_vp + want_vr + want_flat))
    assert ((dq == dqflags.NO_FLAT_FIELD) == ~good).all()
