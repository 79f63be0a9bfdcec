import numpy as np

from calpipe.datamodels import dqflags
from calpipe.kernels.linearity import correct_linearity


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
