"""Likelihood ramp fit on resultant differences, with jump detection (Brandt 2024).

The differences ``d_i = (R_{i+1} - R_i) / (tbar_{i+1} - tbar_i)`` all measure the
slope. With read noise ``s`` per read and flux ``f`` (electrons), their covariance is
tridiagonal::

    C_ii     = [s^2 (1/N_i + 1/N_{i+1}) + f (tau_i + tau_{i+1} - 2 tbar_i)] / dt_i^2
    C_i,i+1  = [f (tbar_{i+1} - tau_{i+1}) - s^2 / N_{i+1}] / (dt_i dt_{i+1})

(differences further apart are independent). The generalised least-squares slope
``u^T C^-1 d / u^T C^-1 u``, its variance ``1 / u^T C^-1 u`` and the chi-square come
from one LDL^T factorisation of C, O(n) per pixel. A difference that is not usable
(either resultant DO_NOT_USE, SATURATED or NaN, or removed as a jump) is taken out of
the system; the remaining differences, whatever pieces of the ramp they belong to, share
one slope.

Jumps: with the diagonal and first off-diagonal of C^-1 (also O(n)), the chi-square drop
obtained by freeing one difference, or an adjacent pair whose shared resultant has
more than one read (a jump inside it spreads over both), is computed for all of them
at once. The largest drop, penalised by its threshold (``t^2`` for one difference,
the two-degree-of-freedom chi-square with the same tail probability as ``t`` sigma for
a pair; ``t = 4.5`` by default), is removed if above threshold, and the search
repeats while at least three usable differences remain. The flux that sets the
covariance is the median of the usable differences for the search, then the fitted
slope (clipped at zero) for the final fit.

Electrons throughout: the caller multiplies by the gain.
"""

import math

import numpy as np
from numba import njit, prange

from calpipe.kernels.ramp_optimal import load_pixel, single_resultant, store_pixel

DEFAULT_SIGMA = 4.5
"""Default jump threshold, in sigma-equivalent of the chi-square drop."""

MIN_RESULTANTS = 4
"""Fewer resultants than this: the likelihood fit is not used."""


def chisq_thresholds(sigma):
    """Chi-square drops for removing one difference and an adjacent pair.

    One difference: ``sigma^2``. A pair (two degrees of freedom): the value whose
    tail probability equals the two-sided Gaussian tail beyond ``sigma``,
    ``-2 ln(erfc(sigma / sqrt(2)))``.
    """
    sigma = float(sigma)
    p = math.erfc(sigma / math.sqrt(2.0))
    if p > 0.0:
        two = -2.0 * math.log(p)
    else:
        # Asymptotic ln erfc(x) ~ -x^2 - ln(x sqrt(pi)), where erfc underflows.
        x = sigma / math.sqrt(2.0)
        two = 2.0 * x * x + 2.0 * math.log(x * math.sqrt(math.pi))
    return sigma * sigma, two


def prepare(tbar, tau, nreads):
    """Read-pattern constants for :func:`fit_block`, one row per difference.

    Rows: 1/dt, read and Poisson parts of C_ii (per unit read variance, per unit
    flux), read and Poisson parts of C_i,i+1, and 1.0 where a pair (i, i+1) may be
    removed together (its shared resultant i+1 has more than one read).
    """
    tbar = np.asarray(tbar, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    nreads = np.asarray(nreads, dtype=np.float64)
    m = tbar.shape[0] - 1
    c = np.zeros((6, max(m, 1)))
    for i in range(m):
        dt = tbar[i + 1] - tbar[i]
        c[0, i] = 1.0 / dt
        c[1, i] = (1.0 / nreads[i] + 1.0 / nreads[i + 1]) / dt**2
        c[2, i] = (tau[i] + tau[i + 1] - 2.0 * tbar[i]) / dt**2
        if i + 1 < m:
            dt2 = tbar[i + 2] - tbar[i + 1]
            c[3, i] = -1.0 / nreads[i + 1] / (dt * dt2)
            c[4, i] = (tbar[i + 1] - tau[i + 1]) / (dt * dt2)
            c[5, i] = 1.0 if nreads[i + 1] > 1 else 0.0
    return tbar, tau, nreads, c


@njit(cache=True, inline="always", error_model="numpy")
def _covariance(m, read_var, flux, c, used, a, b):
    for i in range(m):
        a[i] = read_var * c[1, i] + flux * c[2, i] if used[i] else 1.0
    for i in range(m - 1):
        b[i] = read_var * c[3, i] + flux * c[4, i] if (used[i] and used[i + 1]) else 0.0


@njit(cache=True, inline="always", error_model="numpy")
def _solve(m, a, b, used, d, piv, x, y):
    """x = C^-1 u, y = C^-1 d (u: 1 on used differences); returns (d^T y, u^T y, u^T x).

    LDL^T of the tridiagonal C: pivots ``piv`` (leading), forward then back substitution.
    Unused differences have a = 1, b = 0 and a zero right-hand side, so they drop out.
    """
    for i in range(m):
        ui = 1.0 if used[i] else 0.0
        di = d[i] if used[i] else 0.0
        if i == 0:
            piv[0] = a[0]
            x[0] = ui
            y[0] = di
        else:
            el = b[i - 1] / piv[i - 1]
            piv[i] = a[i] - el * b[i - 1]
            x[i] = ui - el * x[i - 1]
            y[i] = di - el * y[i - 1]
    x[m - 1] /= piv[m - 1]
    y[m - 1] /= piv[m - 1]
    for i in range(m - 2, -1, -1):
        x[i] = (x[i] - b[i] * x[i + 1]) / piv[i]
        y[i] = (y[i] - b[i] * y[i + 1]) / piv[i]
    qa = 0.0
    qb = 0.0
    qc = 0.0
    for i in range(m):
        if used[i]:
            qa += d[i] * y[i]
            qb += y[i]
            qc += x[i]
    return qa, qb, qc


@njit(cache=True, inline="always", error_model="numpy")
def _median_used(m, d, used, buf):
    k = 0
    for i in range(m):
        if used[i]:
            v = d[i]
            j = k
            while j > 0 and buf[j - 1] > v:
                buf[j] = buf[j - 1]
                j -= 1
            buf[j] = v
            k += 1
    if k % 2 == 1:
        return buf[k // 2]
    return 0.5 * (buf[k // 2 - 1] + buf[k // 2])


@njit(cache=True, inline="always", error_model="numpy")
def _best_drop(m, a, b, used, c, piv, rpiv, x, y, qb, qc, gd, go):
    """Largest chi-square drops: (drop1, index1, drop2, index2) for one difference and a pair."""
    # Trailing pivots, then diagonal and first off-diagonal of C^-1.
    rpiv[m - 1] = a[m - 1]
    for i in range(m - 2, -1, -1):
        rpiv[i] = a[i] - b[i] * b[i] / rpiv[i + 1]
    for i in range(m):
        v = a[i]
        if i > 0:
            v -= b[i - 1] * b[i - 1] / piv[i - 1]
        if i < m - 1:
            v -= b[i] * b[i] / rpiv[i + 1]
        gd[i] = 1.0 / v
    for i in range(m - 1):
        go[i] = -b[i] * gd[i + 1] / piv[i]
    slope = qb / qc
    best1 = 0.0
    i1 = -1
    best2 = 0.0
    i2 = -1
    for i in range(m):
        if not used[i]:
            continue
        # Residual of difference i in the whitened system and its variance.
        res = y[i] - x[i] * slope
        s11 = gd[i] - x[i] * x[i] / qc
        if s11 > 0.0:
            drop = res * res / s11
            if drop > best1:
                best1 = drop
                i1 = i
        if i + 1 < m and used[i + 1] and c[5, i] > 0.0:
            res2 = y[i + 1] - x[i + 1] * slope
            s22 = gd[i + 1] - x[i + 1] * x[i + 1] / qc
            s12 = go[i] - x[i] * x[i + 1] / qc
            det = s11 * s22 - s12 * s12
            if det > 0.0:
                drop = (res * res * s22 - 2.0 * res * res2 * s12 + res2 * res2 * s11) / det
                if drop > best2:
                    best2 = drop
                    i2 = i
    return best1, i1, best2, i2


@njit(cache=True, inline="always", error_model="numpy")
def fit_pixel(r, usable, read_var, tbar, tau, nreads, c, detect, th1, th2,
              d, used, a, b, piv, rpiv, x, y, gd, go, buf, jflag):
    """Fit one pixel's ramp (electrons). Returns (slope, var_rnoise, var_poisson, njumps).

    ``jflag`` (uint8, zeroed by the caller) receives 1 on the later resultant of every
    removed difference. The other arrays are scratch of length n - 1.
    """
    n = r.shape[0]
    m = n - 1
    first = -1
    for k in range(n):
        if usable[k]:
            first = k
            break
    if first < 0:
        return np.nan, 0.0, 0.0, 0
    nused = 0
    for i in range(m):
        used[i] = usable[i] and usable[i + 1]
        d[i] = (r[i + 1] - r[i]) * c[0, i]
        if used[i]:
            nused += 1
    if nused == 0:
        slope, var_r, var_p = single_resultant(r[first], first, read_var, tbar, tau, nreads)
        return slope, var_r, var_p, 0

    flux = max(_median_used(m, d, used, buf), 0.0)
    njumps = 0
    while True:
        _covariance(m, read_var, flux, c, used, a, b)
        qa, qb, qc = _solve(m, a, b, used, d, piv, x, y)
        if not detect or nused < 3:
            break
        best1, i1, best2, i2 = _best_drop(m, a, b, used, c, piv, rpiv, x, y, qb, qc, gd, go)
        one_better = best1 - th1 > best2 - th2
        if one_better and best1 > th1:
            used[i1] = False
            jflag[i1 + 1] = 1
            nused -= 1
        elif not one_better and best2 > th2:
            used[i2] = False
            used[i2 + 1] = False
            jflag[i2 + 1] = 1
            jflag[i2 + 2] = 1
            nused -= 2
        else:
            break
        njumps += 1

    # Final fit with the covariance at the fitted count rate.
    flux = max(qb / qc, 0.0)
    _covariance(m, read_var, flux, c, used, a, b)
    qa, qb, qc = _solve(m, a, b, used, d, piv, x, y)
    slope = qb / qc
    # Variance split: weights w = x / qc applied to each part of C.
    vr = 0.0
    vp = 0.0
    for i in range(m):
        if used[i]:
            w = x[i] / qc
            vr += w * w * c[1, i]
            vp += w * w * c[2, i]
            if i + 1 < m and used[i + 1]:
                w2 = x[i + 1] / qc
                vr += 2.0 * w * w2 * c[3, i]
                vp += 2.0 * w * w2 * c[4, i]
    return slope, read_var * vr, max(slope, 0.0) * vp, njumps


@njit(parallel=True, cache=True, error_model="numpy")
def fit_block(resultants, groupdq, read_noise, gain, tbar, tau, nreads, c,
              detect, th1, th2, want_jumps,
              out_slope, out_vp, out_vr, out_err, out_dq, out_jumps):
    """Fit every pixel of a block of rows; outputs in DN/s and (DN/s)^2.

    ``resultants`` (n, rows, nx) in DN with n >= 2, ``groupdq`` uint8 (n, rows, nx),
    ``read_noise`` and ``gain`` (rows, nx). Outputs (rows, nx) are written in place,
    ``out_jumps`` (n, rows, nx) only when ``want_jumps``.
    """
    n, rows, nx = resultants.shape
    m = n - 1
    for row in prange(rows):
        # Per-row scratch: allocated once per row, not per pixel.
        r = np.empty(n)
        usable = np.empty(n, dtype=np.bool_)
        jflag = np.zeros(n, dtype=np.uint8)
        d = np.empty(m)
        used = np.empty(m, dtype=np.bool_)
        a = np.empty(m)
        b = np.empty(m)
        piv = np.empty(m)
        rpiv = np.empty(m)
        x = np.empty(m)
        y = np.empty(m)
        gd = np.empty(m)
        go = np.empty(m)
        buf = np.empty(m)
        for col in range(nx):
            dq, nusable, g, rn = load_pixel(resultants, groupdq, read_noise, gain,
                                            row, col, r, usable)
            slope = 0.0
            var_r = 0.0
            var_p = 0.0
            nj = 0
            if nusable > 0:
                jflag[:] = 0
                slope, var_r, var_p, nj = fit_pixel(
                    r, usable, rn * rn, tbar, tau, nreads, c, detect, th1, th2,
                    d, used, a, b, piv, rpiv, x, y, gd, go, buf, jflag)
            store_pixel(row, col, slope, var_r, var_p, dq, nj, g, jflag, want_jumps,
                        out_slope, out_vp, out_vr, out_err, out_dq, out_jumps)
