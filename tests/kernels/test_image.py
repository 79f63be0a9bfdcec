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
