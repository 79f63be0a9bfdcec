"""Optimal-weighting ramp fit for unevenly sampled resultants, with jump detection.

Slope estimator of Casertano et al. (2022): per segment of consecutive usable
resultants, weights ``w_i = ((1 + P) N_i / (1 + P N_i)) |(tbar_i - t_mid) / t_half|^P``
with the exponent ``P`` chosen from the segment's signal-to-noise (Fixsen et al. 2000),
slope ``sum K_i R_i`` with ``K_i = (F0 tbar_i - F1) w_i / D``. Segments are combined with
inverse read-noise-variance weights; the Poisson variance is the per-unit-flux
coefficient times the combined slope (:func:`poisson_variance`).

Jumps (:func:`_jump_search`): the ramp is cut between resultants. Each round fits the
pieces left with read-noise weights and tests every single difference, and every double
difference across a multi-read resultant, against the fit of everything else: the
excess of its local slope over that fit is a linear combination of the resultants,
normalised by its exact standard deviation (:func:`_leave_out`). The largest positive
excess (cosmic rays add charge) beyond ``intercept - log10(clip(f, 1, 1e4)) / 3`` (f in
e/s, intercept 5.5 by default) is cut and the search starts again; then the differences
beside a cut across a multi-read resultant are tested at NEIGHBOUR_SIGMA. A difference
below the rest beyond the threshold (CONSISTENCY_SIGMA after a jump), or a single
difference left after a jump that disagrees with the first resultant's slope from reset,
flags the pixel UNRELIABLE_SLOPE | DO_NOT_USE.

Speed: pixels with every resultant usable form one segment and are fitted a chunk of a
row at a time with the pixel index innermost (vectorised), with the first round of the
jump search made exactly from tabulated coefficients (:func:`build_rounds`);
pixels with an unusable resultant, or a candidate beyond the lowest threshold the count
rate allows, go through :func:`fit_pixel`, which does the same arithmetic one pixel at a
time and the whole search (its first rounds from the same tables when every resultant
is usable).

Everything here works in electrons: the caller multiplies by the gain. The functions
are pure Numba kernels over one block of rows; :func:`calpipe.kernels.ramp.fit_ramps`
is the public entry point.
"""

import math
import warnings
from typing import NamedTuple

import numpy as np
from numba import njit
from numba.core.errors import NumbaIRAssumptionWarning
from numba.extending import overload

from calpipe.kernels import ramp_driver

DEFAULT_INTERCEPT = 5.5
"""Jump threshold at 1 e/s, in sigma (Sharma & Casertano)."""
THRESHOLD_SLOPE = 1.0 / 3.0
"""Decrease of the jump threshold per decade of count rate (e/s)."""
NEIGHBOUR_SIGMA = 2.0
"""A multi-read resultant beside a cut jump is dropped too when the difference on its
other side lies this far above the fit of everything else (part of the jump may be
inside it)."""
CONSISTENCY_SIGMA = 3.0
"""After a jump, a piece of the ramp this many sigma below the rest marks the fit as
untrustworthy (shared by both algorithms)."""

# Casertano et al. (2022) table 2: exponent P by segment signal-to-noise.
_SNR_EDGES = (5.0, 10.0, 20.0, 50.0, 100.0)
POWERS = np.array([0.0, 0.4, 1.0, 3.0, 6.0, 10.0])

# Above this many resultants the per-segment coefficient table (6 n^3 values) is
# not built and coefficients are computed per segment instead (a kernel of its own).
MAX_TABLE_RESULTANTS = 64
# Above this many, the jump search's rounds after a first cut are computed, not tabulated.
MAX_ROUND_RESULTANTS = 32
NO_TABLES = (np.zeros(0), np.zeros(0), np.zeros(0))
"""What stands for :func:`build_tables`' output past MAX_TABLE_RESULTANTS (a 1-D
``ktab`` selects the computed coefficients at compile time)."""


@njit(cache=True, inline="always", error_model="numpy")
def _power_index(signal, read_var):
    """Index into POWERS from S = signal / sqrt(read_var + signal)."""
    if signal <= 0.0:
        return 0
    snr = signal / math.sqrt(read_var + signal)
    for k in range(5):
        if snr < _SNR_EDGES[k]:
            return k
    return 5


@njit(cache=True, inline="always", error_model="numpy")
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


@njit(cache=True, inline="always", error_model="numpy")
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


def segment_fit(r, s, e, p, tables, tbar, tau, nreads, kbuf):
    """Fit of segment [s, e] with exponent index ``p``: (slope, read_coeff,
    poisson_coeff) as :func:`segment_coefficients` gives them, with the coefficients
    in ``kbuf[s:e + 1]``. ``tables`` is :func:`build_tables`' output, or past
    MAX_TABLE_RESULTANTS :data:`NO_TABLES` (computed per segment)."""
    raise NotImplementedError("compiled only")


# Inlining this overload into loops trips a pedantic check of Numba's SSA pass (a
# warning with no effect on the code: the fits match the reference implementation).
warnings.filterwarnings("ignore", message=r"variable '_segment_fit__locals__",
                        category=NumbaIRAssumptionWarning)


@overload(segment_fit, inline="always", jit_options={"error_model": "numpy"})
def _segment_fit(r, s, e, p, tables, tbar, tau, nreads, kbuf):
    # Chosen at compile time: a branch on a run-time flag here slows the per-pixel
    # code several times even when never taken.
    if tables[0].ndim != 4:
        def computed(r, s, e, p, tables, tbar, tau, nreads, kbuf):
            rc, pc = segment_coefficients(s, e, POWERS[p], tbar, tau, nreads, kbuf)
            slope = 0.0
            for k in range(s, e + 1):
                slope += kbuf[k] * r[k]
            return slope, rc, pc

        return computed

    def tabulated(r, s, e, p, tables, tbar, tau, nreads, kbuf):
        ktab, rtab, ptab = tables
        slope = 0.0
        for k in range(s, e + 1):
            kbuf[k] = ktab[p, s, e, k]
            slope += kbuf[k] * r[k]
        return slope, rtab[p, s, e], ptab[p, s, e]

    return tabulated


def prepare(tbar, tau, nreads):
    """Read-pattern constants for :func:`fit_block` (pure function of the read pattern)."""
    tbar = np.asarray(tbar, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    nreads = np.asarray(nreads, dtype=np.float64)
    n = tbar.shape[0]
    tables = build_tables(tbar, tau, nreads) if n <= MAX_TABLE_RESULTANTS else NO_TABLES
    # Coefficients of the whole ramp as one segment, per exponent (the fast path).
    kfull = np.zeros((6, n))
    rfull = np.zeros(6)
    pfull = np.zeros(6)
    if n >= 2:
        for p in range(6):
            if tables is not NO_TABLES:
                kfull[p] = tables[0][p, 0, n - 1]
                rfull[p] = tables[1][p, 0, n - 1]
                pfull[p] = tables[2][p, 0, n - 1]
            else:
                rfull[p], pfull[p] = segment_coefficients.py_func(0, n - 1, POWERS[p], tbar, tau,
                                                                  nreads, kfull[p])
    rounds, round_ab, round_count = build_rounds(tbar, tau, nreads, tables, n <= MAX_ROUND_RESULTANTS)
    # The fast path's jump screen: the first round's candidates that can be tested.
    first = rounds[0, :round_count[0]]
    jlow = np.ascontiguousarray(first[first[:, n] > 0.0]) if n >= 2 else np.zeros((0, n + 2))
    return (tbar, tau, nreads, *tables, kfull, rfull, pfull, jlow, rounds, round_ab, round_count)


@njit(cache=True, inline="always", error_model="numpy")
def poisson_variance(slope, coeff, var_r):
    """Poisson variance of a fitted slope: ``coeff`` (per unit flux) times the slope,
    not clipped at zero, so that its expectation is the true one at zero flux too (a
    slope clipped at zero overstates it: err 2-4% too large at zero flux with many reads
    per resultant). Floored at ``-var_r / 2``, so that err stays above its read-noise
    part's 1/sqrt(2) on a far negative slope. Shared by both algorithms."""
    v = slope * coeff
    floor = -0.5 * var_r
    return v if v > floor else floor


@njit(cache=True, inline="always", error_model="numpy")
def single_resultant(value, i, read_var, tbar, tau, nreads):
    """Slope and variances from one resultant, counts starting at zero at reset."""
    slope = value / tbar[i]
    var_r = read_var / (nreads[i] * tbar[i] * tbar[i])
    var_p = max(slope, 0.0) * tau[i] / (tbar[i] * tbar[i])
    return slope, var_r, var_p


@njit(cache=True, inline="always", error_model="numpy")
def _quadratic_variance(s, e, c, read_var, f, tau, tbar, nreads):
    """Variance of ``sum c_a R_a`` over resultants s..e: read part ``s^2 sum c_a^2 / N_a``,
    Poisson part ``f (sum c_a^2 tau_a + 2 sum_{a<b} c_a c_b tbar_a)``."""
    vr = 0.0
    vp = 0.0
    right = 0.0
    for a in range(e, s - 1, -1):
        vr += c[a] * c[a] / nreads[a]
        vp += c[a] * (c[a] * tau[a] + 2.0 * tbar[a] * right)
        right += c[a]
    return read_var * vr + f * vp


@njit(cache=True, inline="always", error_model="numpy")
def _leave_out(r, s, e, a, b, read_var, f, tables, tbar, tau, nreads, kbuf, cbuf, ow, ows, ov):
    """Excess of the local slope ``(R_{b+1} - R_a) / (tbar_{b+1} - tbar_a)`` over the fit
    of everything else, and its exact variance.

    The differences a..b of piece [s, e] are left out: the rest is the piece's parts
    [s, a] and [b + 1, e] and the other pieces (weights ``ow``, weighted slopes ``ows``,
    squared weights times variances ``ov``), each fitted with read-noise weights and
    combined with inverse read-noise-variance weights. The excess is a linear
    combination of resultants s..e plus the independent other pieces, hence its exact
    variance. Returns (excess, variance); variance -1 when nothing else is left.
    """
    wl = 0.0
    wr = 0.0
    sl = 0.0
    sr = 0.0
    if a > s:
        sl, rc, _ = segment_fit(r, s, a, 0, tables, tbar, tau, nreads, kbuf)
        wl = 1.0 / rc
    if e > b + 1:
        sr, rc, _ = segment_fit(r, b + 1, e, 0, tables, tbar, tau, nreads, kbuf)
        wr = 1.0 / rc
    wt = ow + wl + wr
    if wt <= 0.0:
        return 0.0, -1.0
    for k in range(s, e + 1):
        cbuf[k] = 0.0
    if a > s:
        for k in range(s, a + 1):
            cbuf[k] = -wl * kbuf[k] / wt
    if e > b + 1:
        for k in range(b + 1, e + 1):
            cbuf[k] = -wr * kbuf[k] / wt
    inv_dt = 1.0 / (tbar[b + 1] - tbar[a])
    cbuf[b + 1] += inv_dt
    cbuf[a] -= inv_dt
    excess = (r[b + 1] - r[a]) * inv_dt - (ows + wl * sl + wr * sr) / wt
    var = _quadratic_variance(s, e, cbuf, read_var, f, tau, tbar, nreads) + ov / (wt * wt)
    return excess, var


@njit(cache=True, **ramp_driver.NO_REFCOUNT)
def _pieces(n, usable, cut, bounds):
    """Pieces of two or more resultants: runs of usable resultants not separated by a
    cut difference (``cut[i]``: difference (i, i + 1) out). Bounds into ``bounds[q]``
    (s, e); returns their number."""
    npiece = 0
    i = 0
    while i < n:
        if not usable[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and usable[j + 1] and cut[j] == 0:
            j += 1
        if j > i:
            bounds[npiece, 0] = i
            bounds[npiece, 1] = j
            npiece += 1
        i = j + 1
    return npiece


@njit(cache=True, **ramp_driver.NO_REFCOUNT)
def _against_reset(r, usable, s, read_var, f, tbar, tau, nreads, cbuf):
    """Squared normalised difference between the local slope of resultants (s, s + 1)
    and the first usable resultant's slope from reset, ``R_0 / tbar_0`` (exact variance:
    both are linear in the resultants)."""
    first = 0
    while not usable[first]:
        first += 1
    for k in range(first, s + 2):
        cbuf[k] = 0.0
    inv_dt = 1.0 / (tbar[s + 1] - tbar[s])
    cbuf[s + 1] += inv_dt
    cbuf[s] -= inv_dt
    cbuf[first] -= 1.0 / tbar[first]
    x = 0.0
    for k in range(first, s + 2):
        x += cbuf[k] * r[k]
    var = _quadratic_variance(first, s + 1, cbuf, read_var, f, tau, tbar, nreads)
    return x * x / var if var > 0.0 else 0.0


@njit(cache=True, **ramp_driver.NO_REFCOUNT)
def _piece_fits(r, npiece, bounds, tables, tbar, tau, nreads, kbuf, segs):
    """Read-noise-weighted fits of the pieces: ``segs[q]`` = (slope, weight per unit read
    variance, Poisson coefficient); returns the sums of the weights and weighted slopes."""
    sw = 0.0
    sws = 0.0
    for q in range(npiece):
        slope, rc, pc = segment_fit(r, bounds[q, 0], bounds[q, 1], 0, tables, tbar, tau, nreads, kbuf)
        segs[q, 0] = slope
        segs[q, 1] = 1.0 / rc
        segs[q, 2] = pc
        sw += 1.0 / rc
        sws += slope / rc
    return sw, sws


@njit(cache=True, **ramp_driver.NO_REFCOUNT)
def _candidates(r, npiece, bounds, segs, sw, sws, read_var, f, tables, tbar, tau, nreads,
                kbuf, cbuf, cand, stats):
    """One round of the jump search: every candidate's excess over the fit of everything
    else and its variance (:func:`_leave_out`), for the pieces in ``bounds`` fitted in
    ``segs``. Candidate ``m`` is the differences ``cand[m]`` = (a, b), its (excess,
    variance) is ``stats[m]``; returns their number."""
    sv = 0.0
    for q in range(npiece):
        sv += segs[q, 1] * (read_var + f * segs[q, 2] * segs[q, 1])
    m = 0
    for q in range(npiece):
        s = bounds[q, 0]
        e = bounds[q, 1]
        wq = segs[q, 1]
        ow = sw - wq
        ows = sws - wq * segs[q, 0]
        ov = sv - wq * (read_var + f * segs[q, 2] * wq)
        for a in range(s, e):
            for b in (a, a + 1):
                # b = a + 1: the double difference across resultant a + 1.
                if b > a and (b >= e or nreads[b] <= 1.0):
                    continue
                excess, var = _leave_out(r, s, e, a, b, read_var, f, tables, tbar, tau, nreads,
                                         kbuf, cbuf, ow, ows, ov)
                cand[m, 0] = a
                cand[m, 1] = b
                stats[m, 0] = excess
                stats[m, 1] = var
                m += 1
    return m


@njit(cache=True, error_model="numpy")
def build_rounds(tbar, tau, nreads, tables, all_configs):
    """The rounds of :func:`_jump_search` on a ramp with every resultant usable, as
    constants, for the cuts the search makes first: none (config 0), the single
    difference (d, d + 1) (config 1 + d), the double difference (d, d + 2) (config n + d).
    Each candidate's excess is linear in the resultants and its variance linear in the
    read variance and the flux, so a round is ``rounds[config, m]`` = (coefficients on
    the n resultants, variance per unit read variance, per unit flux), for the candidate
    differences ``round_ab[config, m]``; ``round_count[config]`` of them. Built with
    :func:`_candidates` itself on unit ramps. Without ``all_configs``, config 0 only."""
    n = tbar.shape[0]
    nconfig = 2 * n - 1 if all_configs else 1
    width = max(2 * n, 1)
    rounds = np.zeros((nconfig, width, n + 2))
    round_ab = np.zeros((nconfig, width, 2), dtype=np.int64)
    round_count = np.zeros(nconfig, dtype=np.int64)
    usable = np.ones(n, dtype=np.bool_)
    cut = np.zeros(max(n, 1), dtype=np.int64)
    bounds = np.zeros((n + 1, 2), dtype=np.int64)
    segs = np.zeros((n + 1, 3))
    unit = np.zeros(n)
    kbuf = np.zeros(n)
    cbuf = np.zeros(n)
    stats = np.zeros((width, 2))
    for config in range(nconfig):
        cut[:] = 0
        if config >= n:
            d = config - n
            if d + 1 >= n - 1 or nreads[d + 1] <= 1.0:
                continue  # the search never cuts across a one-read or the last resultant
            cut[d] = 1
            cut[d + 1] = 1
        elif config >= 1:
            cut[config - 1] = 1
        npiece = _pieces(n, usable, cut, bounds)
        m = 0
        for k in range(n):
            unit[k] = 1.0
            sw, sws = _piece_fits(unit, npiece, bounds, tables, tbar, tau, nreads, kbuf, segs)
            m = _candidates(unit, npiece, bounds, segs, sw, sws, 0.0, 0.0, tables, tbar, tau, nreads,
                            kbuf, cbuf, round_ab[config], stats)
            for c in range(m):
                rounds[config, c, k] = stats[c, 0]
            unit[k] = 0.0
        for col, read_var, f in ((n, 1.0, 0.0), (n + 1, 0.0, 1.0)):
            sw, sws = _piece_fits(unit, npiece, bounds, tables, tbar, tau, nreads, kbuf, segs)
            m = _candidates(unit, npiece, bounds, segs, sw, sws, read_var, f, tables, tbar, tau,
                            nreads, kbuf, cbuf, round_ab[config], stats)
            for c in range(m):
                rounds[config, c, col] = stats[c, 1]
        round_count[config] = m
    return rounds, round_ab, round_count


@njit(cache=True, **ramp_driver.NO_REFCOUNT)
def _jump_search(r, usable, read_var, consts, kbuf, cbuf, segs, cut, bounds, cand, stats, jflag):
    """Cut the differences that hold jumps; returns (njumps, unreliable).

    ``cut`` (per difference, 1 where out) is updated in place and ``jflag`` gets 1 on
    the later resultant of every difference cut for a jump. Each round fits the pieces
    left with read-noise weights and tests every candidate against the fit of
    everything else (:func:`_candidates`): single differences, and double differences
    across a multi-read resultant (a jump inside it spreads over both). Only an excess
    above the rest counts as a jump (cosmic rays add charge); the largest one beyond
    the threshold is cut and the search starts again. When none is left, the
    differences beside a cut, across a multi-read resultant, are tested at
    NEIGHBOUR_SIGMA (the rest of a jump inside that resultant). A difference below the
    rest beyond the threshold (CONSISTENCY_SIGMA after a jump) means no trustworthy fit.

    With every resultant usable, the first rounds come from :func:`build_rounds`'s
    tables (the same numbers, a dot product each); the others are computed.
    """
    tbar = consts.tbar
    tau = consts.tau
    nreads = consts.nreads
    tables = (consts.ktab, consts.rtab, consts.ptab)
    rounds = consts.rounds
    n = r.shape[0]
    config = 0
    for k in range(n):
        if not usable[k]:
            config = -1
    njumps = 0
    while True:
        npiece = _pieces(n, usable, cut, bounds)
        if npiece == 0:
            return njumps, False
        sw, sws = _piece_fits(r, npiece, bounds, tables, tbar, tau, nreads, kbuf, segs)
        # The flux that sets the variances and the threshold: the fit of the pieces.
        f = max(segs[0, 0] if npiece == 1 else sws / sw, 0.0)
        th = consts.intercept - THRESHOLD_SLOPE * math.log10(min(max(f, 1.0), 1e4))
        th2 = th * th if th > 0.0 else 0.0
        if config >= 0:
            m = consts.round_count[config]
            for c in range(m):
                x = 0.0
                for k in range(n):
                    x += rounds[config, c, k] * r[k]
                stats[c, 0] = x
                stats[c, 1] = read_var * rounds[config, c, n] + f * rounds[config, c, n + 1]
                cand[c, 0] = consts.round_ab[config, c, 0]
                cand[c, 1] = consts.round_ab[config, c, 1]
        else:
            m = _candidates(r, npiece, bounds, segs, sw, sws, read_var, f, tables, tbar, tau, nreads,
                            kbuf, cbuf, cand, stats)
        best = 0.0
        ba = -1
        bb = -1
        near = 0.0
        na = -1
        worst = 0.0
        for c in range(m):
            excess = stats[c, 0]
            var = stats[c, 1]
            if var <= 0.0:
                continue
            a = cand[c, 0]
            b = cand[c, 1]
            stat2 = excess * excess / var
            if excess <= 0.0:
                worst = max(worst, stat2)
                continue
            if stat2 > best:
                best = stat2
                ba = a
                bb = b
            if b == a and stat2 > near and (
                    (a > 0 and nreads[a] > 1.0 and jflag[a] != 0 and cut[a - 1] != 0)
                    or (a + 2 < n and nreads[a + 1] > 1.0 and jflag[a + 2] != 0
                        and cut[a + 1] != 0)):
                near = stat2
                na = a
        if ba >= 0 and best > th2:
            for k in range(ba, bb + 1):
                cut[k] = 1
                jflag[k + 1] = 1
            njumps += 1
            if config == 0:
                config = 1 + ba if bb == ba else n + ba
                if config >= rounds.shape[0]:
                    config = -1
            else:
                config = -1
            continue
        if na >= 0 and near > NEIGHBOUR_SIGMA * NEIGHBOUR_SIGMA:
            cut[na] = 1
            jflag[na + 1] = 1
            config = -1
            continue
        if njumps == 0:
            return 0, worst > th2
        c2 = CONSISTENCY_SIGMA * CONSISTENCY_SIGMA
        if npiece == 1 and bounds[0, 1] == bounds[0, 0] + 1:
            # One difference left: nothing in the ramp to test it against but the
            # slope of the first usable resultant from reset.
            worst = max(worst, _against_reset(r, usable, bounds[0, 0], read_var, f, tbar, tau,
                                              nreads, cbuf))
        return njumps, worst > c2


@njit(cache=True, **ramp_driver.NO_REFCOUNT)
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


@njit(cache=True, **ramp_driver.NO_REFCOUNT)
def fit_pixel(r, usable, read_var, consts, work, jflag):
    """Fit one pixel's ramp (electrons). Returns (slope, var_rnoise, var_poisson, njumps,
    unreliable).

    ``r``: resultants in electrons; ``usable``: bool per resultant; ``consts``: a
    :class:`Constants`; ``work``: the scratch ``ramp_driver.scratch`` makes; ``jflag``
    (uint8, zeroed by the caller) receives 1 on the later resultant of every difference
    cut as a jump. ``unreliable`` is True where no trustworthy fit is left. Returns NaN
    slope when no resultant is usable.
    """
    tbar = consts.tbar
    tau = consts.tau
    nreads = consts.nreads
    tables = (consts.ktab, consts.rtab, consts.ptab)
    _, kbuf, cbuf, stack, segs, cand, stats = work
    n = r.shape[0]
    first = -1
    for k in range(n):
        if usable[k]:
            first = k
            break
    if first < 0:
        return np.nan, 0.0, 0.0, 0, False
    cut = stack[:, 0]
    bounds = stack[n + 1:]
    for i in range(n - 1):
        cut[i] = 0
    njumps = 0
    unreliable = False
    if consts.detect:
        njumps, unreliable = _jump_search(r, usable, read_var, consts, kbuf, cbuf, segs, cut, bounds,
                                          cand, stats, jflag)
    nseg = _pieces(n, usable, cut, bounds)
    for q in range(nseg):
        s = bounds[q, 0]
        e = bounds[q, 1]
        # Exponent from the piece's signal, measured with the P = 0 (read-noise limit)
        # fit, not the endpoint difference, and in one pass: a second pass would choose
        # from a slope that itself jumps where the exponent changes, which biases the
        # slope there (docs/ramp_fitting.md).
        slope, _, _ = segment_fit(r, s, e, 0, tables, tbar, tau, nreads, kbuf)
        p = _power_index(slope * (tbar[e] - tbar[s]), read_var)
        slope, rc, pc = segment_fit(r, s, e, p, tables, tbar, tau, nreads, kbuf)
        segs[q, 0] = slope
        segs[q, 1] = 1.0 / (rc * read_var)
        segs[q, 2] = pc
    sum_w, sum_ws, sum_wwp = _combine(segs, nseg)
    if sum_w > 0.0:
        slope = sum_ws / sum_w
        return (slope, 1.0 / sum_w, poisson_variance(slope, sum_wwp / (sum_w * sum_w), 1.0 / sum_w),
                njumps, unreliable)
    # No piece of two or more resultants: the first usable one, from reset. After a
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


@njit(cache=True, **ramp_driver.NO_REFCOUNT)
def _fast_chunk(w, r, rvar, kfull, rfull, pfull, tbar, jlow, detect, th_min, slow,
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
        # As in fit_pixel: the exponent from the P = 0 fit's signal.
        p2 = _power_index_nobranch(sp[0, j] * span, rv)
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
        out_vp[j] = poisson_variance(comb, sum_wwp / (wgt * wgt), 1.0 / wgt)
    if detect:
        # Jump screen: the first round of the jump search, exactly (``jlow``: each
        # candidate's excess as coefficients on the resultants, and its variance),
        # against the lowest threshold the count rate allows (th_min, at 1e4 e/s). A
        # pixel with no excess of either sign beyond it has no jump and a consistent
        # fit; the others are refit by fit_pixel. Written without the division, with a
        # hair of margin so that rounding cannot hide a candidate.
        th2 = th_min * th_min * (1.0 - 1e-6) if th_min > 0.0 else 0.0
        for c in range(jlow.shape[0]):
            vr1 = jlow[c, n]
            vp1 = jlow[c, n + 1]
            for j in range(w):
                sp[1, j] = 0.0
            for k in range(n):
                ck = jlow[c, k]
                for j in range(w):
                    sp[1, j] += ck * r[k, j]
            for j in range(w):
                s0 = sp[0, j]
                f = s0 if s0 > 0.0 else 0.0
                x = sp[1, j]
                slow[j] = slow[j] | (x * x > th2 * (rvar[j] * vr1 + f * vp1))


class Constants(NamedTuple):
    """What :func:`fit_block` needs besides the pixels: :func:`prepare`'s read-pattern
    constants and the jump settings. Its type selects this fit in the shared driver."""

    tbar: np.ndarray
    tau: np.ndarray
    nreads: np.ndarray
    ktab: np.ndarray
    rtab: np.ndarray
    ptab: np.ndarray
    kfull: np.ndarray
    rfull: np.ndarray
    pfull: np.ndarray
    jlow: np.ndarray
    rounds: np.ndarray
    round_ab: np.ndarray
    round_count: np.ndarray
    detect: bool
    intercept: float


@overload(ramp_driver.scratch)
def _scratch(consts, n, chunk):
    if not ramp_driver.is_constants(consts, Constants):
        return None

    def scratch(consts, n, chunk):
        # sp, kbuf, cbuf, stack, segs, cand, stats
        return (np.empty((6, chunk)), np.empty(n), np.empty(n),
                np.empty((2 * n + 1, 2), dtype=np.int64), np.empty((n, 3)),
                np.empty((2 * n, 2), dtype=np.int64), np.empty((2 * n, 2)))

    return scratch


@overload(ramp_driver.fit_chunk, jit_options={"error_model": "numpy"})
def _fit_chunk(consts, work, w, r, rvar, slow, jflag, out_slope, out_vr, out_vp):
    if not ramp_driver.is_constants(consts, Constants):
        return None

    def fit_chunk(consts, work, w, r, rvar, slow, jflag, out_slope, out_vr, out_vp):
        # Lowest threshold (at 1e4 e/s), a hair lower so that rounding cannot hide a jump.
        th_min = consts.intercept - THRESHOLD_SLOPE * 4.0 - 1e-9
        _fast_chunk(w, r, rvar, consts.kfull, consts.rfull, consts.pfull, consts.tbar,
                    consts.jlow, consts.detect, th_min, slow, work[0], out_slope, out_vr, out_vp)

    return fit_chunk


@overload(ramp_driver.fit_one, jit_options=ramp_driver.NO_REFCOUNT)
def _fit_one(consts, work, r, usable, read_var, jflag):
    if not ramp_driver.is_constants(consts, Constants):
        return None

    def fit_one(consts, work, r, usable, read_var, jflag):
        return fit_pixel(r, usable, read_var, consts, work, jflag)

    return fit_one


@njit(cache=True, nogil=True, error_model="numpy")
def fit_block(worker, nworkers, resultants, row0, col0, groupdq, read_noise, gain, consts, want_jumps, chunk,
              out_slope, out_vp, out_vr, out_err, out_dq, out_jumps):
    """One thread's share of a block of rows (:func:`calpipe.kernels.ramp_driver.fit_share`)
    with this fit (``consts``: a :class:`Constants`); the cached entry point."""
    ramp_driver.fit_share(worker, nworkers, resultants, row0, col0, groupdq, read_noise, gain, consts, want_jumps,
                          chunk, out_slope, out_vp, out_vr, out_err, out_dq, out_jumps)
