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
more than one read (a jump inside it spreads over both), and the fitted excess of what
is freed, are computed for all of them at once. Candidates lie above the fit (cosmic
rays add charge) and above the median of the differences still in by
``sqrt(th2 - th1)`` of their noise. The largest drop, penalised by its threshold
(``t^2`` for one difference, the two-degree-of-freedom chi-square with the same tail
probability as ``t`` sigma for a pair; ``t = 4.5`` by default), is removed if above
threshold, and the search repeats while at least two differences remain; then the
neighbours of removed differences across a multi-read resultant are tested at
``th2 - th1`` (the rest of a jump inside that resultant). Ties go to the larger fitted
charge. A difference left far below the fit (``th1``; 3 sigma after a jump) means no
trustworthy fit: the pixel is flagged UNRELIABLE_SLOPE | DO_NOT_USE. The flux that sets
the covariance is the median of the usable differences during the search, then the
fitted slope (clipped at zero) for the final fit.

Speed: pixels with every resultant usable are fitted a chunk of a row at a time with
the pixel index innermost (vectorised); their jump search starts with the total
chi-square, an upper bound on any drop, so that only pixels whose chi-square reaches a
threshold get the exact first test; those with a removal or a flag are refit. Pixels with a removal, or with unusable resultants, go
through :func:`fit_pixel`, which does the same arithmetic one pixel at a time.

Electrons throughout: the caller multiplies by the gain.
"""

import math
from typing import NamedTuple

import numpy as np
from numba import njit
from numba.extending import overload

from calpipe.kernels import ramp_driver
from calpipe.kernels.ramp_driver import median
from calpipe.kernels.ramp_optimal import CONSISTENCY_SIGMA, poisson_variance, single_resultant

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
def _solve(m, a, b, used, d, ipiv, x, y):
    """x = C^-1 u, y = C^-1 d (u: 1 on used differences); returns (u^T y, u^T x).

    LDL^T of the tridiagonal C: reciprocal pivots ``ipiv`` (leading), forward then
    back substitution. Unused differences have a = 1, b = 0 and a zero right-hand
    side, so they drop out. The same operations as :func:`_solve_chunk`.
    """
    for i in range(m):
        ui = 1.0 if used[i] else 0.0
        di = d[i] if used[i] else 0.0
        if i == 0:
            piv = a[0]
            x[0] = ui
            y[0] = di
        else:
            el = b[i - 1] * ipiv[i - 1]
            piv = a[i] - el * b[i - 1]
            x[i] = ui - el * x[i - 1]
            y[i] = di - el * y[i - 1]
        ipiv[i] = 1.0 / piv
    x[m - 1] *= ipiv[m - 1]
    y[m - 1] *= ipiv[m - 1]
    for i in range(m - 2, -1, -1):
        x[i] = (x[i] - b[i] * x[i + 1]) * ipiv[i]
        y[i] = (y[i] - b[i] * y[i + 1]) * ipiv[i]
    qb = 0.0
    qc = 0.0
    for i in range(m):
        if used[i]:
            qb += y[i]
            qc += x[i]
    return qb, qc


@njit(cache=True, inline="always", error_model="numpy")
def _solve_x(m, a, b, used, d, ipiv, x):
    """x = C^-1 u only; returns (d^T x, u^T x), i.e. (u^T C^-1 d, u^T C^-1 u)."""
    for i in range(m):
        ui = 1.0 if used[i] else 0.0
        if i == 0:
            piv = a[0]
            x[0] = ui
        else:
            el = b[i - 1] * ipiv[i - 1]
            piv = a[i] - el * b[i - 1]
            x[i] = ui - el * x[i - 1]
        ipiv[i] = 1.0 / piv
    x[m - 1] *= ipiv[m - 1]
    for i in range(m - 2, -1, -1):
        x[i] = (x[i] - b[i] * x[i + 1]) * ipiv[i]
    qb = 0.0
    qc = 0.0
    for i in range(m):
        if used[i]:
            qb += x[i] * d[i]
            qc += x[i]
    return qb, qc


@njit(cache=True, inline="always", error_model="numpy")
def _median_used(m, d, used, buf):
    k = 0
    for i in range(m):
        if used[i]:
            buf[k] = d[i]
            k += 1
    return median(buf, k)


@njit(cache=True, inline="always", error_model="numpy")
def _best_drop(m, a, b, used, c, ipiv, rpiv, x, y, qb, qc, gd, jflag, near, d, med, lift):
    """Largest chi-square drops from freeing differences that lie above the fit.

    Returns (drop1, index1, drop2, index2, worst): the best single difference and
    adjacent pair whose fitted excess is positive (cosmic rays add charge; for a pair,
    both parts of the excess non-negative and their charge positive), and the largest
    single drop of either sign, which tells whether the fit left is consistent.
    Equal drops go to the candidate with the larger fitted charge, so that a tie can
    never keep the difference with the jump in place of a clean one.

    ``near``: single differences only, and only those that share a multi-read
    resultant with a difference already removed (``jflag`` on its later resultant):
    where the rest of a jump inside that resultant would be.

    A candidate must also lie above the robust level ``med`` (the median difference)
    by ``lift`` times its own noise (for a pair, either part): a fit pulled down by a
    low difference puts the clean ones above it, but not above the median.
    """
    # Trailing reciprocal pivots, then the diagonal of C^-1.
    rpiv[m - 1] = 1.0 / a[m - 1]
    for i in range(m - 2, 0, -1):
        rpiv[i] = 1.0 / (a[i] - b[i] * b[i] * rpiv[i + 1])
    for i in range(m):
        v = a[i]
        if i > 0:
            v -= b[i - 1] * b[i - 1] * ipiv[i - 1]
        if i < m - 1:
            v -= b[i] * b[i] * rpiv[i + 1]
        gd[i] = 1.0 / v
    slope = qb / qc
    iqc = 1.0 / qc
    best1 = 0.0
    q1 = 0.0
    i1 = -1
    best2 = 0.0
    q2 = 0.0
    i2 = -1
    worst = 0.0
    for i in range(m):
        if not used[i]:
            continue
        # Residual of difference i in the whitened system and its variance; the
        # fitted excess of the difference is res / s11.
        xi = x[i]
        res = y[i] - xi * slope
        s11 = gd[i] - xi * xi * iqc
        hi = d[i] - med
        up = hi > 0.0 and hi * hi > lift * a[i]
        cand = up
        if near:
            cand = up and (
                (i > 0 and c[5, i - 1] > 0.0 and jflag[i] != 0 and not used[i - 1])
                or (i + 1 < m and c[5, i] > 0.0 and jflag[i + 2] != 0 and not used[i + 1]))
        if s11 > 0.0:
            drop = res * res / s11
            worst = max(worst, drop)
            charge = res / (s11 * c[0, i])
            if cand and res > 0.0 and (drop > best1 or (drop == best1 and charge > q1)):
                best1 = drop
                q1 = charge
                i1 = i
        if not near and i + 1 < m and used[i + 1] and c[5, i] > 0.0:
            # First off-diagonal of C^-1.
            go = -b[i] * gd[i + 1] * ipiv[i]
            xj = x[i + 1]
            res2 = y[i + 1] - xj * slope
            s22 = gd[i + 1] - xj * xj * iqc
            s12 = go - xi * xj * iqc
            det = s11 * s22 - s12 * s12
            if det > 0.0:
                e1 = (s22 * res - s12 * res2) / det
                e2 = (s11 * res2 - s12 * res) / det
                drop = res * e1 + res2 * e2
                charge = e1 / c[0, i] + e2 / c[0, i + 1]
                hi2 = d[i + 1] - med
                up2 = hi2 > 0.0 and hi2 * hi2 > lift * a[i + 1]
                if (up or up2) and e1 >= 0.0 and e2 >= 0.0 and charge > 0.0 and (
                        drop > best2 or (drop == best2 and charge > q2)):
                    best2 = drop
                    q2 = charge
                    i2 = i
    return best1, i1, best2, i2, worst


@njit(cache=True, inline="always", error_model="numpy")
def _variances(m, x, qc, used, c):
    """Read-noise (per unit read variance) and Poisson (per unit flux) variance of the
    slope: weights w = x / qc applied to each part of C."""
    iqc = 1.0 / qc
    vr = 0.0
    vp = 0.0
    for i in range(m):
        if used[i]:
            w = x[i] * iqc
            vr += w * w * c[1, i]
            vp += w * w * c[2, i]
            if i + 1 < m and used[i + 1]:
                w2 = x[i + 1] * iqc
                vr += 2.0 * w * w2 * c[3, i]
                vp += 2.0 * w * w2 * c[4, i]
    return vr, vp


@njit(cache=True, **ramp_driver.NO_REFCOUNT)  # compiled once, not inlined: see NO_REFCOUNT
def fit_pixel(r, usable, read_var, tbar, tau, nreads, c, detect, th1, th2,
              d, used, a, b, ipiv, rpiv, x, y, gd, buf, jflag):
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
        return np.nan, 0.0, 0.0, 0, False
    nused = 0
    for i in range(m):
        used[i] = usable[i] and usable[i + 1]
        d[i] = (r[i + 1] - r[i]) * c[0, i]
        if used[i]:
            nused += 1
    if nused == 0:
        slope, var_r, var_p = single_resultant(r[first], first, read_var, tbar, tau, nreads)
        return slope, var_r, var_p, 0, False

    njumps = 0
    worst = 0.0
    near = False
    while True:
        # The flux that sets the covariance: the median of the differences still in,
        # which a minority of jumps cannot pull.
        med = _median_used(m, d, used, buf)
        flux = max(med, 0.0)
        _covariance(m, read_var, flux, c, used, a, b)
        qb, qc = _solve(m, a, b, used, d, ipiv, x, y)
        if not detect or nused < 2:
            break
        best1, i1, best2, i2, worst = _best_drop(m, a, b, used, c, ipiv, rpiv, x, y, qb, qc, gd,
                                                 jflag, near, d, med, th2 - th1)
        if near:
            # The rest of a jump inside a multi-read resultant, in the neighbour of the
            # difference removed: removed when the pair would have won over the
            # single difference had the fit been this clean (drop above th2 - th1).
            if best1 > th2 - th1:
                used[i1] = False
                jflag[i1 + 1] = 1
                nused -= 1
                near = False
                continue
            break
        if nused < 3:
            best2 = 0.0
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
        elif njumps > 0:
            near = True
            continue
        else:
            break
        njumps += 1
    # A difference still far from the fit that no jump explains (it lies below the
    # fit, e.g. under a fit pulled up by hits too small to find one by one): no fit
    # of these differences can be trusted. After a jump, the differences left are
    # held to a stricter test (CONSISTENCY_SIGMA): a pixel with several hits may
    # have no clean difference left.
    limit = th1 if njumps == 0 else CONSISTENCY_SIGMA * CONSISTENCY_SIGMA
    unreliable = detect and nused >= 2 and worst > limit

    # Final fit with the covariance at the fitted count rate.
    flux = max(qb / qc, 0.0)
    _covariance(m, read_var, flux, c, used, a, b)
    qb, qc = _solve_x(m, a, b, used, d, ipiv, x)
    slope = qb / qc
    vr, vp = _variances(m, x, qc, used, c)
    return slope, read_var * vr, poisson_variance(slope, vp, read_var * vr), njumps, unreliable


# ----------------------------------------------------------------------------------
# Chunk path: every resultant of the pixel usable. The same arithmetic as the
# per-pixel functions above, with the pixel index innermost so that it vectorises.


@njit(cache=True, inline="always", error_model="numpy")
def _solve_chunk(m, w, rvar, flux, c, d, ipiv, x, y, with_y, qb, qc):
    """:func:`_covariance` then :func:`_solve` (``with_y``) or :func:`_solve_x`, for a
    chunk of pixels with every difference used. The covariance is recomputed where it
    is needed rather than stored: fewer passes over memory."""
    for j in range(w):
        ipiv[0, j] = 1.0 / (rvar[j] * c[1, 0] + flux[j] * c[2, 0])
        x[0, j] = 1.0
        y[0, j] = d[0, j]
    for i in range(1, m):
        a1 = c[1, i]
        a2 = c[2, i]
        b1 = c[3, i - 1]
        b2 = c[4, i - 1]
        if with_y:
            for j in range(w):
                a = rvar[j] * a1 + flux[j] * a2
                b = rvar[j] * b1 + flux[j] * b2
                el = b * ipiv[i - 1, j]
                x[i, j] = 1.0 - el * x[i - 1, j]
                y[i, j] = d[i, j] - el * y[i - 1, j]
                ipiv[i, j] = 1.0 / (a - el * b)
        else:
            for j in range(w):
                a = rvar[j] * a1 + flux[j] * a2
                b = rvar[j] * b1 + flux[j] * b2
                el = b * ipiv[i - 1, j]
                x[i, j] = 1.0 - el * x[i - 1, j]
                ipiv[i, j] = 1.0 / (a - el * b)
    for j in range(w):
        x[m - 1, j] *= ipiv[m - 1, j]
        y[m - 1, j] *= ipiv[m - 1, j]
    for i in range(m - 2, -1, -1):
        b1 = c[3, i]
        b2 = c[4, i]
        if with_y:
            for j in range(w):
                b = rvar[j] * b1 + flux[j] * b2
                x[i, j] = (x[i, j] - b * x[i + 1, j]) * ipiv[i, j]
                y[i, j] = (y[i, j] - b * y[i + 1, j]) * ipiv[i, j]
        else:
            for j in range(w):
                b = rvar[j] * b1 + flux[j] * b2
                x[i, j] = (x[i, j] - b * x[i + 1, j]) * ipiv[i, j]
    for j in range(w):
        qb[j] = 0.0
        qc[j] = 0.0
    for i in range(m):
        if with_y:
            for j in range(w):
                qb[j] += y[i, j]
                qc[j] += x[i, j]
        else:
            for j in range(w):
                qb[j] += x[i, j] * d[i, j]
                qc[j] += x[i, j]


@njit(cache=True, **ramp_driver.NO_REFCOUNT)
def _fast_chunk(w, r, rvar, c, detect, th1, th2, slow, d, srt, ipiv, x, y,
                flux, qb, qc, t1, t2, s_a, s_b, s_ip, s_x, s_y, s_rp, s_gd, s_used, s_jf, s_d,
                out_slope, out_vr, out_vp):
    """Fit the pixels of a chunk as :func:`fit_pixel` does when all resultants are
    usable; pixels where a jump would be removed are marked ``slow`` (and refit by
    :func:`fit_pixel`). ``s_*``: per-pixel scratch of length m."""
    n = r.shape[0]
    m = n - 1
    for i in range(m):
        ci = c[0, i]
        for j in range(w):
            d[i, j] = (r[i + 1, j] - r[i, j]) * ci
            srt[i, j] = d[i, j]
    # Median of the differences: odd-even transposition sort (m passes sort m values).
    for p in range(m):
        for i in range(p % 2, m - 1, 2):
            for j in range(w):
                u = srt[i, j]
                v = srt[i + 1, j]
                srt[i, j] = v if u > v else u
                srt[i + 1, j] = u if u > v else v
    h = m // 2
    for j in range(w):
        med = srt[h, j] if m % 2 == 1 else 0.5 * (srt[h - 1, j] + srt[h, j])
        srt[0, j] = med
        flux[j] = med if med > 0.0 else 0.0
    _solve_chunk(m, w, rvar, flux, c, d, ipiv, x, y, True, qb, qc)
    if detect and m >= 3:
        # Screen: no removal can lower the chi-square by more than the chi-square
        # itself, so a pixel whose chi-square is below both thresholds has no jump.
        bound = min(th1, th2) * (1.0 - 1e-9)
        for j in range(w):
            t1[j] = 0.0
            t2[j] = qb[j] / qc[j]
        for i in range(m):
            for j in range(w):
                sl = t2[j]
                t1[j] += (d[i, j] - sl) * (y[i, j] - sl * x[i, j])
        for j in range(w):
            if slow[j] or t1[j] < bound:
                continue
            # The exact test of fit_pixel's first pass, on this pixel's column.
            for i in range(m):
                s_a[i] = rvar[j] * c[1, i] + flux[j] * c[2, i]
                s_b[i] = rvar[j] * c[3, i] + flux[j] * c[4, i] if i < m - 1 else 0.0
                s_ip[i] = ipiv[i, j]
                s_x[i] = x[i, j]
                s_y[i] = y[i, j]
                s_d[i] = d[i, j]
                s_used[i] = True
            best1, i1, best2, i2, worst = _best_drop(m, s_a, s_b, s_used, c, s_ip, s_rp, s_x,
                                                     s_y, qb[j], qc[j], s_gd, s_jf, False, s_d,
                                                     srt[0, j], th2 - th1)
            if best1 > th1 or best2 > th2 or worst > th1:
                slow[j] = True
    # Final fit with the covariance at the fitted count rate.
    for j in range(w):
        sl = qb[j] / qc[j]
        flux[j] = sl if sl > 0.0 else 0.0
    _solve_chunk(m, w, rvar, flux, c, d, ipiv, x, y, False, qb, qc)
    for j in range(w):
        t1[j] = 0.0
        t2[j] = 0.0
        out_slope[j] = qb[j] / qc[j]
        qc[j] = 1.0 / qc[j]
    for i in range(m):
        c1 = c[1, i]
        c2 = c[2, i]
        if i + 1 < m:
            c3 = c[3, i]
            c4 = c[4, i]
            for j in range(w):
                wi = x[i, j] * qc[j]
                w2 = x[i + 1, j] * qc[j]
                t1[j] += wi * wi * c1
                t2[j] += wi * wi * c2
                t1[j] += 2.0 * wi * w2 * c3
                t2[j] += 2.0 * wi * w2 * c4
        else:
            for j in range(w):
                wi = x[i, j] * qc[j]
                t1[j] += wi * wi * c1
                t2[j] += wi * wi * c2
    for j in range(w):
        sl = out_slope[j]
        out_vr[j] = rvar[j] * t1[j]
        out_vp[j] = poisson_variance(sl, t2[j], out_vr[j])


class Constants(NamedTuple):
    """What :func:`fit_block` needs besides the pixels: :func:`prepare`'s read-pattern
    constants and the jump settings. Its type selects this fit in the shared driver."""

    tbar: np.ndarray
    tau: np.ndarray
    nreads: np.ndarray
    c: np.ndarray
    detect: bool
    th1: float
    th2: float


@overload(ramp_driver.scratch)
def _scratch(consts, n, chunk):
    if not ramp_driver.is_constants(consts, Constants):
        return None

    def scratch(consts, n, chunk):
        m = n - 1
        # Chunk: cd, srt, cip, cx, cy (m, chunk); flux, qb, qc, t1, t2 (chunk).
        # Pixel: d, a, b, ipiv, rpiv, x, y, gd, buf (m); used (m).
        return (np.empty((m, chunk)), np.empty((m, chunk)), np.empty((m, chunk)), np.empty((m, chunk)),
                np.empty((m, chunk)), np.empty(chunk), np.empty(chunk), np.empty(chunk), np.empty(chunk),
                np.empty(chunk), np.empty(m), np.empty(m), np.empty(m), np.empty(m), np.empty(m),
                np.empty(m), np.empty(m), np.empty(m), np.empty(m), np.empty(m, dtype=np.bool_))

    return scratch


@overload(ramp_driver.fit_chunk, jit_options={"error_model": "numpy"})
def _fit_chunk(consts, work, w, r, rvar, slow, jflag, out_slope, out_vr, out_vp):
    if not ramp_driver.is_constants(consts, Constants):
        return None

    def fit_chunk(consts, work, w, r, rvar, slow, jflag, out_slope, out_vr, out_vp):
        (cd, srt, cip, cx, cy, flux, qb, qc, t1, t2, d, a, b, ipiv, rpiv, x, y, gd, _,
         used) = work
        _fast_chunk(w, r, rvar, consts.c, consts.detect, consts.th1, consts.th2, slow, cd, srt, cip,
                    cx, cy, flux, qb, qc, t1, t2, a, b, ipiv, x, y, rpiv, gd, used, jflag, d,
                    out_slope, out_vr, out_vp)

    return fit_chunk


@overload(ramp_driver.fit_one, jit_options=ramp_driver.NO_REFCOUNT)
def _fit_one(consts, work, r, usable, read_var, jflag):
    if not ramp_driver.is_constants(consts, Constants):
        return None

    def fit_one(consts, work, r, usable, read_var, jflag):
        d, a, b, ipiv, rpiv, x, y, gd, buf, used = work[10:]
        return fit_pixel(r, usable, read_var, consts.tbar, consts.tau, consts.nreads, consts.c,
                         consts.detect, consts.th1, consts.th2, d, used, a, b, ipiv, rpiv, x, y, gd,
                         buf, jflag)

    return fit_one


@njit(cache=True, nogil=True, error_model="numpy")
def fit_block(worker, nworkers, resultants, row0, col0, groupdq, read_noise, gain, consts, want_jumps, chunk,
              out_slope, out_vp, out_vr, out_err, out_dq, out_jumps):
    """One thread's share of a block of rows (:func:`calpipe.kernels.ramp_driver.fit_share`)
    with this fit (``consts``: a :class:`Constants`); the cached entry point."""
    ramp_driver.fit_share(worker, nworkers, resultants, row0, col0, groupdq, read_noise, gain, consts, want_jumps,
                          chunk, out_slope, out_vp, out_vr, out_err, out_dq, out_jumps)
