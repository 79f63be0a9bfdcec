"""Optimal-weighting ramp fit for unevenly sampled resultants, with jump detection.

Slope estimator of Casertano et al. (2022): per segment of consecutive usable
resultants, weights ``w_i = ((1 + P) N_i / (1 + P N_i)) |(tbar_i - t_mid) / t_half|^P``
with the exponent ``P`` chosen from the segment's signal-to-noise (Fixsen et al. 2000),
slope ``sum K_i R_i`` with ``K_i = (F0 tbar_i - F1) w_i / D``. Segments are combined with
inverse read-noise-variance weights; the Poisson variance is the per-unit-flux
coefficient times the combined slope clipped at zero.

Jumps (after Sharma & Casertano): each single (i, i+1) and double (i, i+2) resultant
difference of a segment gives a local slope; its excess over the segment's slope is
normalised by its exact standard deviation (the excess is a linear combination of the
segment's resultants; :func:`_excess_variance`). The largest positive excess (cosmic
rays add charge) is compared with ``intercept - log10(clip(f, 1, 1e4)) / 3`` (f in e/s,
intercept 5.5 by default); above it, the segment is split around the jump (a resultant
beside it is dropped only if part of the jump can be in it) and the pieces are refit
and searched again. Then the pieces are tested against each other (a piece of two
resultants cannot be searched alone): the one furthest above the rest beyond the
threshold is dropped, and again. A piece 3 sigma below the rest after a jump, or no
piece of two resultants left after a jump, flags the pixel UNRELIABLE_SLOPE |
DO_NOT_USE.

Speed: pixels with every resultant usable form one segment and are fitted a chunk of a
row at a time with the pixel index innermost (vectorised); pixels with an unusable
resultant, or an excess above the lowest threshold the count rate allows (against a
lower bound of the statistic's variance over the six exponents), go through
:func:`fit_pixel`, which does the same arithmetic one pixel at a time and makes the exact
jump test.

Everything here works in electrons: the caller multiplies by the gain. The functions
are pure Numba kernels over one block of rows; :func:`calpipe.kernels.ramp.fit_ramps`
is the public entry point.
"""

import math
from typing import NamedTuple

import numpy as np
from numba import njit
from numba.extending import overload

from calpipe.kernels import ramp_driver
from calpipe.kernels.ramp_driver import median

DEFAULT_INTERCEPT = 5.5
"""Jump threshold at 1 e/s, in sigma (Sharma & Casertano)."""
THRESHOLD_SLOPE = 1.0 / 3.0
"""Decrease of the jump threshold per decade of count rate (e/s)."""
NEIGHBOUR_SIGMA = 2.0
"""A multi-read resultant next to a jump is dropped with it when the difference on its
other side lies this far above the slope (part of the jump may be inside it)."""
CONSISTENCY_SIGMA = 3.0
"""After a jump, a piece of the ramp this many sigma below the rest marks the fit as
untrustworthy (shared by both algorithms)."""

# Casertano et al. (2022) table 2: exponent P by segment signal-to-noise.
_SNR_EDGES = (5.0, 10.0, 20.0, 50.0, 100.0)
POWERS = np.array([0.0, 0.4, 1.0, 3.0, 6.0, 10.0])

# Above this many resultants the per-segment coefficient table (6 n^3 values) is
# not built and coefficients are computed per segment instead.
MAX_TABLE_RESULTANTS = 32


@njit(cache=True, error_model="numpy")
def _power_index(signal, read_var):
    """Index into POWERS from S = signal / sqrt(read_var + signal)."""
    if signal <= 0.0:
        return 0
    snr = signal / math.sqrt(read_var + signal)
    for k in range(5):
        if snr < _SNR_EDGES[k]:
            return k
    return 5


@njit(cache=True, error_model="numpy")
def _abs_pow(x, power):
    # The table's exponents are mostly integers: multiply instead of calling pow.
    if power == 0.0:
        return 1.0
    if power == 1.0:
        return x
    if power == 3.0:
        return x * x * x
    if power == 6.0:
        x3 = x * x * x
        return x3 * x3
    if power == 10.0:
        x2 = x * x
        x4 = x2 * x2
        return x4 * x4 * x2
    return x**power


@njit(cache=True, error_model="numpy")
def segment_coefficients(s, e, power, tbar, tau, nreads, k_out):
    """Slope coefficients of segment [s, e] (inclusive) with exponent ``power``.

    Fills ``k_out[s:e + 1]`` with K_i (slope = sum K_i R_i) and returns
    ``(read_coeff, poisson_coeff)``: the slope's read-noise variance per unit read
    variance, ``sum K_i^2 / N_i``, and its Poisson variance per unit flux,
    ``sum K_i^2 tau_i + 2 sum_{i<j} K_i K_j tbar_i``. Needs e > s.
    """
    t_mid = 0.5 * (tbar[s] + tbar[e])
    t_half = 0.5 * (tbar[e] - tbar[s])
    f0 = 0.0
    f1 = 0.0
    f2 = 0.0
    for i in range(s, e + 1):
        # Times relative to the middle keep F2 F0 - F1^2 free of cancellation.
        t = tbar[i] - t_mid
        n = nreads[i]
        w = (1.0 + power) * n / (1.0 + power * n) * _abs_pow(abs(t / t_half), power)
        k_out[i] = w
        f0 += w
        f1 += w * t
        f2 += w * t * t
    det = f2 * f0 - f1 * f1
    read_coeff = 0.0
    poisson_coeff = 0.0
    running = 0.0
    for i in range(s, e + 1):
        k = (f0 * (tbar[i] - t_mid) - f1) * k_out[i] / det
        k_out[i] = k
        read_coeff += k * k / nreads[i]
        poisson_coeff += k * k * tau[i] + 2.0 * k * running
        running += k * tbar[i]
    return read_coeff, poisson_coeff


@njit(cache=True)
def build_tables(tbar, tau, nreads):
    """Coefficients of every segment and exponent: K[p, s, e, i], read and Poisson terms."""
    n = tbar.shape[0]
    ktab = np.zeros((6, n, n, n))
    rtab = np.zeros((6, n, n))
    ptab = np.zeros((6, n, n))
    for p in range(6):
        for s in range(n):
            for e in range(s + 1, n):
                rc, pc = segment_coefficients(s, e, POWERS[p], tbar, tau, nreads, ktab[p, s, e])
                rtab[p, s, e] = rc
                ptab[p, s, e] = pc
    return ktab, rtab, ptab


@njit(cache=True)
def _full_segment(power, tbar, tau, nreads, k_out):
    return segment_coefficients(0, tbar.shape[0] - 1, power, tbar, tau, nreads, k_out)


def prepare(tbar, tau, nreads):
    """Read-pattern constants for :func:`fit_block` (pure function of the read pattern)."""
    tbar = np.asarray(tbar, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    nreads = np.asarray(nreads, dtype=np.float64)
    n = tbar.shape[0]
    if n <= MAX_TABLE_RESULTANTS:
        ktab, rtab, ptab = build_tables(tbar, tau, nreads)
        use_table = True
    else:
        ktab, rtab, ptab = np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1)), np.zeros((1, 1, 1))
        use_table = False
    # Jump statistic constants for single (i, i+1) and double (i, i+2) differences:
    # 1/dt, read variance per unit read variance / dt^2, Poisson variance per flux / dt^2.
    jc = np.zeros((6, max(n, 1)))
    for i in range(n - 1):
        for col, j in ((0, i + 1), (3, i + 2)):
            if j >= n:
                continue
            dt = tbar[j] - tbar[i]
            jc[col, i] = 1.0 / dt
            jc[col + 1, i] = (1.0 / nreads[i] + 1.0 / nreads[j]) / dt**2
            jc[col + 2, i] = (tau[i] + tau[j] - 2.0 * min(tbar[i], tbar[j])) / dt**2
    # Coefficients of the whole ramp as one segment, per exponent (the fast path).
    kfull = np.zeros((6, n))
    rfull = np.zeros(6)
    pfull = np.zeros(6)
    if n >= 2:
        for p in range(6):
            if use_table:
                kfull[p] = ktab[p, 0, n - 1]
                rfull[p] = rtab[p, 0, n - 1]
                pfull[p] = ptab[p, 0, n - 1]
            else:
                rfull[p], pfull[p] = _full_segment(POWERS[p], tbar, tau, nreads, kfull[p])
    jlow = _screen_coefficients(tbar, tau, nreads, jc, kfull, rfull, pfull)
    return tbar, tau, nreads, ktab, rtab, ptab, use_table, jc, kfull, rfull, pfull, jlow


def _screen_coefficients(tbar, tau, nreads, jc, kfull, rfull, pfull):
    """Lower bounds, over the six exponents, of the whole-ramp jump statistic's
    variance per unit read variance (rows 0, 2) and per unit flux (rows 1, 3), for
    single (rows 0, 1) and double (rows 2, 3) differences. Exponents for which a
    candidate carries no information (skipped by the exact test) are left out; a
    candidate with none left gets infinity."""
    n = tbar.shape[0]
    jlow = np.full((4, max(n, 1)), np.inf)
    gr = np.zeros(n)
    gp = np.zeros(n)
    for p in range(6):
        if n < 2:
            break
        _slope_covariance(0, n - 1, kfull[p], tbar, tau, nreads, gr, gp)
        for i in range(n - 1):
            for row, col, j in ((0, 0, i + 1), (2, 3, i + 2)):
                if j >= n:
                    continue
                vr = jc[col + 1, i] + rfull[p] - 2.0 * jc[col, i] * (gr[j] - gr[i])
                vp = jc[col + 2, i] + pfull[p] - 2.0 * jc[col, i] * (gp[j] - gp[i])
                if vr <= 1e-6 * jc[col + 1, i] and vp <= 1e-6 * jc[col + 2, i]:
                    continue
                # A hair low, so that rounding cannot hide a jump from the screen.
                jlow[row, i] = min(jlow[row, i], max(vr, 0.0) * (1.0 - 1e-9))
                jlow[row + 1, i] = min(jlow[row + 1, i], max(vp, 0.0) * (1.0 - 1e-9))
    return jlow


@njit(cache=True, error_model="numpy")
def single_resultant(value, i, read_var, tbar, tau, nreads):
    """Slope and variances from one resultant, counts starting at zero at reset."""
    slope = value / tbar[i]
    var_r = read_var / (nreads[i] * tbar[i] * tbar[i])
    var_p = max(slope, 0.0) * tau[i] / (tbar[i] * tbar[i])
    return slope, var_r, var_p


@njit(cache=True, error_model="numpy")
def _segment_slope(r, s, e, p, tbar, tau, nreads, ktab, use_table, kbuf):
    """Slope of segment [s, e] with exponent index p."""
    slope = 0.0
    if use_table:
        for k in range(s, e + 1):
            slope += ktab[p, s, e, k] * r[k]
    else:
        segment_coefficients(s, e, POWERS[p], tbar, tau, nreads, kbuf)
        for k in range(s, e + 1):
            slope += kbuf[k] * r[k]
    return slope


@njit(cache=True, error_model="numpy")
def _slope_covariance(s, e, k, tbar, tau, nreads, gr, gp):
    """Covariance of each resultant of segment [s, e] with the slope ``sum K_i R_i``.

    ``Cov(R_a, slope) = read_var gr[a] + f gp[a]`` with ``gr[a] = K_a / N_a`` and
    ``gp[a] = K_a tau_a + sum_{i<a} K_i tbar_i + tbar_a sum_{i>a} K_i``.
    """
    right = 0.0
    for a in range(s, e + 1):
        right += k[a]
    left = 0.0
    for a in range(s, e + 1):
        right -= k[a]
        gr[a] = k[a] / nreads[a]
        gp[a] = k[a] * tau[a] + left + tbar[a] * right
        left += k[a] * tbar[a]


@njit(cache=True, error_model="numpy")
def _excess_variance(i, j, col, read_var, f, jc, rc, pc, gr, gp):
    """Exact variance of ``(R_j - R_i) / dt - slope`` (slope of the segment holding
    both, read-noise and Poisson coefficients ``rc``, ``pc``), and the variance of the
    local slope alone. Candidates whose excess variance is below 1e-6 of the latter
    carry no information (the slope is that difference) and are skipped."""
    inv_dt = jc[col, i]
    raw = read_var * jc[col + 1, i] + f * jc[col + 2, i]
    var = (raw + read_var * (rc - 2.0 * inv_dt * (gr[j] - gr[i]))
           + f * (pc - 2.0 * inv_dt * (gp[j] - gp[i])))
    return var, raw


@njit(cache=True, error_model="numpy")
def _jump_search(r, s, e, slope, read_var, jc, rc, pc, gr, gp):
    """Largest normalised positive excess of segment [s, e]: (index, statistic^2,
    whether it is a double difference).

    Index -1 when no difference exceeds the fitted slope. The excess of each single
    (i, i+1) and double (i, i+2) difference over the slope is normalised by its
    exact standard deviation (:func:`_excess_variance`).
    """
    f = max(slope, 0.0)
    best = 0.0
    arg = -1
    double = False
    for i in range(s, e):
        # Single difference (i, i+1), then double difference (i, i+2).
        for col in (0, 3):
            j = i + 1 if col == 0 else i + 2
            if j > e:
                break
            excess = (r[j] - r[i]) * jc[col, i] - slope
            if excess <= 0.0:
                continue
            var, raw = _excess_variance(i, j, col, read_var, f, jc, rc, pc, gr, gp)
            if var <= 1e-6 * raw:
                continue
            stat2 = excess * excess / var
            if stat2 > best:
                best = stat2
                arg = i
                double = col == 3
    return arg, best, double


@njit(cache=True, error_model="numpy")
def _combine(segs, nseg):
    """Sums over the first ``nseg`` segments (slope, weight, Poisson coefficient): the
    weights, the weighted slopes and the squared weights times the Poisson terms."""
    sum_w = 0.0
    sum_ws = 0.0
    sum_wwp = 0.0
    for k in range(nseg):
        w = segs[k, 1]
        sum_w += w
        sum_ws += w * segs[k, 0]
        sum_wwp += w * w * segs[k, 2]
    return sum_w, sum_ws, sum_wwp


@njit(cache=True, error_model="numpy")
def _median_difference(r, usable, jc, buf):
    """Median of the single differences (i, i + 1) between usable resultants, as slopes."""
    k = 0
    for i in range(r.shape[0] - 1):
        if usable[i] and usable[i + 1]:
            buf[k] = (r[i + 1] - r[i]) * jc[0, i]
            k += 1
    return median(buf, k)


@njit(cache=True, error_model="numpy")
def _above(r, i, s, e, slope, f, read_var, jc):
    """Whether the single difference (i, i + 1), inside segment [s, e], lies above
    ``slope`` by more than NEIGHBOUR_SIGMA of its own noise."""
    if i < s or i + 1 > e:
        return False
    excess = (r[i + 1] - r[i]) * jc[0, i] - slope
    var = read_var * jc[1, i] + f * jc[2, i]
    return excess > 0.0 and excess * excess > NEIGHBOUR_SIGMA * NEIGHBOUR_SIGMA * var


@njit(cache=True, error_model="numpy")
def fit_pixel(r, usable, read_var, tbar, tau, nreads, ktab, rtab, ptab, use_table, jc,
              detect, intercept, kbuf, gr, gp, segs, stack, jflag):
    """Fit one pixel's ramp (electrons). Returns (slope, var_rnoise, var_poisson, njumps).

    ``r``: resultants in electrons; ``usable``: bool per resultant; ``jflag`` (uint8,
    zeroed by the caller) receives 1 on the resultants flagged as jumps; ``kbuf``,
    ``gr``, ``gp``, ``segs`` (n, 3) and ``stack`` (2n + 1, 2) are scratch. Pixels where no
    trustworthy fit is left return True as a fifth value. Returns NaN slope when no resultant is usable.
    """
    n = r.shape[0]
    # Initial segments: maximal runs of usable resultants.
    top = 0
    first = -1
    i = 0
    while i < n:
        if usable[i]:
            if first < 0:
                first = i
            j = i
            while j + 1 < n and usable[j + 1]:
                j += 1
            stack[top, 0] = i
            stack[top, 1] = j
            top += 1
            i = j + 1
        else:
            i += 1
    if first < 0:
        return np.nan, 0.0, 0.0, 0, False

    nseg = 0
    njumps = 0
    med = 0.0
    have_med = False
    while top > 0:
        top -= 1
        s = stack[top, 0]
        e = stack[top, 1]
        if e <= s:
            continue
        # Exponent from the segment's signal. The signal is measured with a fit, not
        # the endpoint difference: choosing the weights from a near-minimum-variance
        # estimate keeps the choice uncorrelated with the residual noise that the
        # weights act on, which keeps the slope unbiased and its variance right where
        # the exponent changes. Two passes: P = 0 (read-noise limit), then its exponent.
        p = 0
        for _ in range(2):
            slope = _segment_slope(r, s, e, p, tbar, tau, nreads, ktab, use_table, kbuf)
            p = _power_index(slope * (tbar[e] - tbar[s]), read_var)
        slope = _segment_slope(r, s, e, p, tbar, tau, nreads, ktab, use_table, kbuf)
        if use_table:
            rc = rtab[p, s, e]
            pc = ptab[p, s, e]
        else:
            rc, pc = segment_coefficients(s, e, POWERS[p], tbar, tau, nreads, kbuf)
        if detect and e - s >= 2:
            if use_table:
                _slope_covariance(s, e, ktab[p, s, e], tbar, tau, nreads, gr, gp)
            else:
                _slope_covariance(s, e, kbuf, tbar, tau, nreads, gr, gp)
            arg, stat2, double = _jump_search(r, s, e, slope, read_var, jc, rc, pc, gr, gp)
            if arg >= 0:
                th = intercept - THRESHOLD_SLOPE * math.log10(min(max(slope, 1.0), 1e4))
                if th <= 0.0 or stat2 > th * th:
                    # The jump lies between resultants arg and arg + 1 (arg + 2 for a
                    # double difference) or inside one of them. For a single difference,
                    # a resultant stays in its piece unless part of the jump can be in
                    # it: it has several reads and the difference on its other side
                    # also lies above the slope by NEIGHBOUR_SIGMA. For a double
                    # difference both are dropped, as in Sharma & Casertano.
                    left = arg - 1
                    right = arg + 2
                    if not double:
                        # Against the median single difference of the whole ramp: the
                        # segment's slope is pulled up by the jump.
                        if not have_med:
                            med = _median_difference(r, usable, jc, kbuf)
                            have_med = True
                        f = max(med, 0.0)
                        if nreads[arg] == 1 or not _above(r, arg - 1, s, e, med, f,
                                                          read_var, jc):
                            left = arg
                        if nreads[arg + 1] == 1 or not _above(r, arg + 1, s, e, med, f,
                                                              read_var, jc):
                            right = arg + 1
                    for k in range(left + 1, right):
                        jflag[k] = 1
                    jflag[arg + 1] = 1
                    njumps += 1
                    if left >= s:
                        stack[top, 0] = s
                        stack[top, 1] = left
                        top += 1
                    if right <= e:
                        stack[top, 0] = right
                        stack[top, 1] = e
                        top += 1
                    continue
        segs[nseg, 0] = slope
        segs[nseg, 1] = 1.0 / (rc * read_var)
        segs[nseg, 2] = pc
        stack[n + 1 + nseg, 0] = s
        stack[n + 1 + nseg, 1] = e
        nseg += 1

    # The segments against each other: each one's slope against the combination of
    # the others (independent: no resultant is shared). A segment too short to be
    # searched on its own (two resultants) can still hold a jump; the one lying
    # furthest above the rest, beyond the threshold, is dropped, and again. A
    # segment far below the rest after a jump means no trustworthy fit is left.
    unreliable = False
    while detect and nseg >= 2:
        sum_w, sum_ws, sum_wwp = _combine(segs, nseg)
        best = 0.0
        worst = 0.0
        arg = -1
        for k in range(nseg):
            w = segs[k, 1]
            wo = sum_w - w
            other = (sum_ws - w * segs[k, 0]) / wo
            f = max(other, 0.0)
            var = 1.0 / w + f * segs[k, 2] + 1.0 / wo + f * (sum_wwp - w * w * segs[k, 2]) / (wo * wo)
            excess = segs[k, 0] - other
            stat2 = excess * excess / var
            if excess > 0.0:
                th = intercept - THRESHOLD_SLOPE * math.log10(min(max(other, 1.0), 1e4))
                th2 = th * th if th > 0.0 else 0.0
                if stat2 > th2 and stat2 - th2 > best:
                    best = stat2 - th2
                    arg = k
            elif stat2 > worst:
                worst = stat2
        if arg < 0:
            unreliable = njumps > 0 and worst > CONSISTENCY_SIGMA * CONSISTENCY_SIGMA
            break
        for k in range(stack[n + 1 + arg, 0], stack[n + 1 + arg, 1] + 1):
            jflag[k] = 1
        njumps += 1
        nseg -= 1
        for c in range(3):
            segs[arg, c] = segs[nseg, c]
        stack[n + 1 + arg, 0] = stack[n + 1 + nseg, 0]
        stack[n + 1 + arg, 1] = stack[n + 1 + nseg, 1]

    sum_w, sum_ws, sum_wwp = _combine(segs, nseg)
    if sum_w > 0.0:
        slope = sum_ws / sum_w
        return (slope, 1.0 / sum_w, max(slope, 0.0) * sum_wwp / (sum_w * sum_w), njumps,
                unreliable)
    # No segment of two or more resultants: the first usable one, from reset. After a
    # jump this rests on the reset level alone, which a hit in that resultant would
    # corrupt unseen: not a trustworthy fit.
    slope, var_r, var_p = single_resultant(r[first], first, read_var, tbar, tau, nreads)
    return slope, var_r, var_p, njumps, njumps > 0


@njit(cache=True, inline="always", error_model="numpy")
def _power_index_nobranch(signal, read_var):
    # Same result as _power_index for finite input, as a count of edges passed
    # (a select, not a branch, so that it vectorises).
    snr = signal / math.sqrt(read_var + abs(signal))
    p = 0
    for k in range(5):
        p += 0 if snr < _SNR_EDGES[k] else 1
    return p if signal > 0.0 else 0


@njit(cache=True, error_model="numpy")
def _fast_chunk(w, r, rvar, kfull, rfull, pfull, tbar, jc, jlow, detect, th_min, slow,
                sp, out_slope, out_vr, out_vp):
    """Fit the pixels of a chunk whose resultants are all usable: one segment.

    Vectorised across pixels. Pixels whose jump statistic could pass the threshold
    are marked ``slow`` and refit by :func:`fit_pixel`, which makes the exact test,
    so the fast path never changes a result, it only skips work.
    """
    n = r.shape[0]
    span = tbar[n - 1] - tbar[0]
    # Slopes with each of the six exponents: cheap across pixels, and it avoids a
    # per-pixel table gather.
    for p in range(6):
        for j in range(w):
            sp[p, j] = 0.0
        for k in range(n):
            kk = kfull[p, k]
            for j in range(w):
                sp[p, j] += kk * r[k, j]
    for j in range(w):
        rv = rvar[j]
        # Two passes, as in fit_pixel: P = 0, then the exponent its signal gives.
        p1 = _power_index_nobranch(sp[0, j] * span, rv)
        s1 = sp[0, j]
        for p in range(1, 6):
            s1 = sp[p, j] if p1 == p else s1
        p2 = _power_index_nobranch(s1 * span, rv)
        slope = sp[0, j]
        rc = rfull[0]
        pc = pfull[0]
        for p in range(1, 6):
            hit = p2 == p
            slope = sp[p, j] if hit else slope
            rc = rfull[p] if hit else rc
            pc = pfull[p] if hit else pc
        # Combination of one segment, written as fit_pixel does it.
        wgt = 1.0 / (rc * rv)
        sum_ws = wgt * slope
        sum_wwp = wgt * wgt * pc
        comb = sum_ws / wgt
        out_slope[j] = comb
        out_vr[j] = 1.0 / wgt
        out_vp[j] = (comb if comb > 0.0 else 0.0) * sum_wwp / (wgt * wgt)
        sp[0, j] = slope
    if detect and n >= 3:
        # Jump screen: the threshold falls with the count rate to no less than th_min
        # (at 1e4 e/s) and the statistic's variance is at least ``jlow``'s bound, so a
        # pixel whose every positive excess is below th_min sigma of that bound has no
        # jump; the others are refit by fit_pixel, which makes the exact test.
        # Written without the division (excess^2 > th_min^2 var).
        th2 = th_min * th_min if th_min > 0.0 else 0.0
        for i in range(n - 1):
            for col in (0, 3):
                jj = i + 1 if col == 0 else i + 2
                if jj > n - 1:
                    break
                inv_dt = jc[col, i]
                lr = jlow[0 if col == 0 else 2, i]
                lp = jlow[1 if col == 0 else 3, i]
                for j in range(w):
                    slope = sp[0, j]
                    f = slope if slope > 0.0 else 0.0
                    excess = (r[jj, j] - r[i, j]) * inv_dt - slope
                    var = rvar[j] * lr + f * lp
                    cand = (excess > 0.0) & (excess * excess > th2 * var)
                    slow[j] = slow[j] | cand


class Constants(NamedTuple):
    """What :func:`fit_block` needs besides the pixels: :func:`prepare`'s read-pattern
    constants and the jump settings. Its type selects this fit in the shared driver."""

    tbar: np.ndarray
    tau: np.ndarray
    nreads: np.ndarray
    ktab: np.ndarray
    rtab: np.ndarray
    ptab: np.ndarray
    use_table: bool
    jc: np.ndarray
    kfull: np.ndarray
    rfull: np.ndarray
    pfull: np.ndarray
    jlow: np.ndarray
    detect: bool
    intercept: float


@overload(ramp_driver.scratch)
def _scratch(consts, n, chunk):
    if not ramp_driver.is_constants(consts, Constants):
        return None

    def scratch(consts, n, chunk):
        # sp, kbuf, gr, gp, stack, segs
        return (np.empty((6, chunk)), np.empty(n), np.empty(n), np.empty(n),
                np.empty((2 * n + 1, 2), dtype=np.int64), np.empty((n, 3)))

    return scratch


@overload(ramp_driver.fit_chunk, jit_options={"error_model": "numpy"})
def _fit_chunk(consts, work, w, r, rvar, slow, jflag, out_slope, out_vr, out_vp):
    if not ramp_driver.is_constants(consts, Constants):
        return None

    def fit_chunk(consts, work, w, r, rvar, slow, jflag, out_slope, out_vr, out_vp):
        # Lowest threshold (at 1e4 e/s), a hair lower so that rounding cannot hide a jump.
        th_min = consts.intercept - THRESHOLD_SLOPE * 4.0 - 1e-9
        _fast_chunk(w, r, rvar, consts.kfull, consts.rfull, consts.pfull, consts.tbar, consts.jc,
                    consts.jlow, consts.detect, th_min, slow, work[0], out_slope, out_vr, out_vp)

    return fit_chunk


@overload(ramp_driver.fit_one, jit_options={"error_model": "numpy"})
def _fit_one(consts, work, r, usable, read_var, jflag):
    if not ramp_driver.is_constants(consts, Constants):
        return None

    def fit_one(consts, work, r, usable, read_var, jflag):
        return fit_pixel(r, usable, read_var, consts.tbar, consts.tau, consts.nreads, consts.ktab,
                         consts.rtab, consts.ptab, consts.use_table, consts.jc, consts.detect,
                         consts.intercept, work[1], work[2], work[3], work[5], work[4], jflag)

    return fit_one


@njit(cache=True, nogil=True, error_model="numpy")
def fit_block(resultants, groupdq, read_noise, gain, consts, want_jumps, chunk, worker, nworkers,
              out_slope, out_vp, out_vr, out_err, out_dq, out_jumps):
    """:func:`calpipe.kernels.ramp_driver.fit_block` with this fit (``consts``: a
    :class:`Constants`); the cached entry point."""
    ramp_driver.fit_block(resultants, groupdq, read_noise, gain, consts, want_jumps, chunk, worker, nworkers,
                          out_slope, out_vp, out_vr, out_err, out_dq, out_jumps)
