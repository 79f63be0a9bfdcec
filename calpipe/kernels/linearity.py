"""Classical non-linearity correction: a per-pixel polynomial from measured to linear counts."""

import numpy as np
from numba import njit, prange

from calpipe import dqflags

_SATURATED = np.uint8(dqflags.SATURATED)
_NO_LIN_CORR = np.uint32(dqflags.NO_LIN_CORR)


@njit(parallel=True, cache=True)
def _correct(resultants, groupdq, coeffs, pixeldq, coeffs_dq):
    nres, ny, nx = resultants.shape
    ncoeff = coeffs.shape[0]
    for y in prange(ny):
        for x in range(nx):
            pixeldq[y, x] |= coeffs_dq[y, x]
            usable = (coeffs_dq[y, x] & _NO_LIN_CORR) == 0
            allzero = True
            for k in range(ncoeff):
                c = coeffs[k, y, x]
                if np.isnan(c):
                    usable = False
                if c != 0:
                    allzero = False
            if allzero or not usable:
                pixeldq[y, x] |= _NO_LIN_CORR
                continue
            for i in range(nres):
                if groupdq[i, y, x] & _SATURATED:
                    continue
                m = np.float64(resultants[i, y, x])
                # Horner, in double precision
                value = np.float64(coeffs[ncoeff - 1, y, x])
                for k in range(ncoeff - 2, -1, -1):
                    value = value * m + coeffs[k, y, x]
                resultants[i, y, x] = value


def correct_linearity(resultants, groupdq, coeffs, pixeldq, coeffs_dq=None):
    """Map measured counts to linear counts, in place: ``c = sum_k coeffs[k] * m**k``.

    Parameters
    ----------
    resultants : float32 (nresultants, ny, nx), bias removed.
    groupdq : uint8 (nresultants, ny, nx); SATURATED resultants are left alone.
    coeffs : float (ncoeff, ny, nx), lowest power first.
    pixeldq : uint32 (ny, nx), updated in place: ``coeffs_dq`` is propagated, and pixels
        with NaN or all-zero coefficients (or NO_LIN_CORR in ``coeffs_dq``) get
        NO_LIN_CORR and are not corrected.
    coeffs_dq : uint32 (ny, nx) or None.

    The polynomial is applied to each resultant, a mean of reads: for a curved response
    this differs from the mean of the corrected reads by the curvature times the spread
    of the counts within the resultant (a second-order effect).
    """
    if resultants.ndim != 3 or groupdq.shape != resultants.shape:
        raise ValueError("resultants and groupdq must be 3-D arrays of the same shape")
    if coeffs.ndim != 3 or coeffs.shape[1:] != resultants.shape[1:]:
        raise ValueError(f"coeffs shape {coeffs.shape} does not match data {resultants.shape[1:]}")
    if pixeldq.shape != resultants.shape[1:]:
        raise ValueError("pixeldq must have the shape of one resultant")
    if coeffs_dq is None:
        coeffs_dq = np.zeros(resultants.shape[1:], dtype=np.uint32)
    _correct(resultants, groupdq, coeffs, pixeldq, coeffs_dq.astype(np.uint32, copy=False))
