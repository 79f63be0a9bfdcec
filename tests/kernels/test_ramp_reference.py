"""The Numba ramp kernels against slow, obvious numpy implementations.

The references build the resultants' covariance matrix straight from the formulas
(Var R_i = s^2/N_i + f tau_i, Cov(R_i, R_j) = f tbar_i for i < j), solve the
generalised least squares with a dense solver and search jumps by brute force.
"""

import numpy as np
import pytest

from calpipe import dqflags
from calpipe.kernels import ramp_optimal
from calpipe.kernels.ramp import fit_ramps, resultant_times
from calpipe.kernels.ramp_likely import chisq_thresholds
from calpipe.kernels.ramp_optimal import CONSISTENCY_SIGMA, NEIGHBOUR_SIGMA

FRAME_TIME = 3.04


def resultant_covariance(tbar, tau, nreads, read_var, flux):
    """Covariance of the resultants (electrons) for read variance and flux (e/s)."""
    n = tbar.size
    cov = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                cov[i, j] = read_var / nreads[i] + flux * tau[i]
            else:
                cov[i, j] = flux * tbar[min(i, j)]
    return cov


def poisson_part(slope, per_flux, var_r):
    """The fitted slope times the Poisson variance per unit flux, not clipped at zero,
    but never below -var_r / 2 (as documented)."""
    return max(slope * per_flux, -var_r / 2)


# --------------------------------------------------------------------- optimal
POWER_TABLE = [(5, 0.0), (10, 0.4), (20, 1.0), (50, 3.0), (100, 6.0), (np.inf, 10.0)]


def power_for(signal, read_var):
    if signal <= 0:
        return 0.0
    snr = signal / np.sqrt(read_var + signal)
    for edge, p in POWER_TABLE:
        if snr < edge:
            return p
    return 10.0


def optimal_coefficients(t, nr, power):
    tm, th = (t[0] + t[-1]) / 2, (t[-1] - t[0]) / 2
    w = (1 + power) * nr / (1 + power * nr) * np.abs((t - tm) / th) ** power
    f0, f1, f2 = w.sum(), (w * t).sum(), (w * t * t).sum()
    return (f0 * t - f1) * w / (f2 * f0 - f1**2)


def ref_optimal_pixel(r, usable, read_var, tbar, tau, nreads, detect, intercept=5.5):
    """Casertano weights per piece; the documented jump search, written plainly.

    Returns (slope, var_rnoise, var_poisson, jumps, unreliable).
    """
    n = r.size
    jumps = np.zeros(n, bool)
    cut = [not (usable[i] and usable[i + 1]) for i in range(n - 1)]

    def pieces():
        out, s = [], None
        for i in range(n):
            if usable[i] and s is None:
                s = i
            if s is not None and (i == n - 1 or cut[i] or not usable[i + 1]):
                if usable[i] and i > s:
                    out.append((s, i))
                s = None
        return out

    def rest_vector(pcs):
        """Coefficients on all resultants of the read-noise-weighted fit of ``pcs``."""
        vec, wsum = np.zeros(n), 0.0
        for s, e in pcs:
            k = optimal_coefficients(tbar[s:e + 1], nreads[s:e + 1], 0.0)
            w = 1 / (k @ resultant_covariance(tbar[s:e + 1], tau[s:e + 1], nreads[s:e + 1], 1.0, 0.0) @ k)
            vec[s:e + 1] += w * k
            wsum += w
        return vec / wsum

    def threshold(f):
        return intercept - np.log10(min(max(f, 1.0), 1e4)) / 3

    njumps, unreliable = 0, False
    while detect:
        pcs = pieces()
        if not pcs:
            break
        f = max(rest_vector(pcs) @ r, 0.0)
        cov = resultant_covariance(tbar, tau, nreads, read_var, f)
        th = threshold(f)
        th2 = th * th if th > 0 else 0.0
        best, near, worst, pick, pick_near = 0.0, 0.0, 0.0, None, None
        for s, e in pcs:
            for a in range(s, e):
                for b in (a, a + 1):
                    if b > a and (b >= e or nreads[b] <= 1):
                        continue
                    rest = [p for p in pcs if p != (s, e)] + [(s, a)] * (a > s) + [(b + 1, e)] * (e > b + 1)
                    if not rest:
                        continue
                    # The excess over the rest's fit is linear in the resultants.
                    c = -rest_vector(rest)
                    c[b + 1] += 1 / (tbar[b + 1] - tbar[a])
                    c[a] -= 1 / (tbar[b + 1] - tbar[a])
                    x, var = c @ r, c @ cov @ c
                    if x <= 0:
                        worst = max(worst, x * x / var)
                        continue
                    if x * x / var > best:
                        best, pick = x * x / var, (a, b)
                    beside = ((a > 0 and nreads[a] > 1 and jumps[a])
                              or (a + 2 < n and nreads[a + 1] > 1 and jumps[a + 2]))
                    if b == a and beside and x * x / var > near:
                        near, pick_near = x * x / var, a
        if pick is not None and best > th2:
            for k in range(pick[0], pick[1] + 1):
                cut[k] = jumps[k + 1] = True
            njumps += 1
            continue
        if pick_near is not None and near > NEIGHBOUR_SIGMA**2:
            cut[pick_near] = jumps[pick_near + 1] = True
            continue
        if njumps == 0:
            unreliable = worst > th2
            break
        if len(pcs) == 1 and pcs[0][1] == pcs[0][0] + 1:
            s = pcs[0][0]
            first = int(np.argmax(usable))
            c = np.zeros(n)
            c[s + 1] += 1 / (tbar[s + 1] - tbar[s])
            c[s] -= 1 / (tbar[s + 1] - tbar[s])
            c[first] -= 1 / tbar[first]
            worst = max(worst, (c @ r) ** 2 / (c @ cov @ c))
        unreliable = worst > CONSISTENCY_SIGMA**2
        break

    fits = []
    for s, e in pieces():
        sl = slice(s, e + 1)
        # Exponent: from the P = 0 fit's signal (as documented).
        slope = optimal_coefficients(tbar[sl], nreads[sl], 0.0) @ r[sl]
        p = power_for(slope * (tbar[e] - tbar[s]), read_var)
        k = optimal_coefficients(tbar[sl], nreads[sl], p)
        cov_read = resultant_covariance(tbar[sl], tau[sl], nreads[sl], read_var, 0.0)
        cov_flux = resultant_covariance(tbar[sl], tau[sl], nreads[sl], 0.0, 1.0)
        fits.append([k @ r[sl], 1 / (k @ cov_read @ k), k @ cov_flux @ k])
    if fits:
        w = np.array([f[1] for f in fits])
        slope = sum(wi * f[0] for wi, f in zip(w, fits)) / w.sum()
        pvar = poisson_part(slope, sum(wi**2 * f[2] for wi, f in zip(w, fits)) / w.sum() ** 2, 1 / w.sum())
        return slope, 1 / w.sum(), pvar, jumps, unreliable
    i = int(np.argmax(usable))
    slope = r[i] / tbar[i]
    return (slope, read_var / (nreads[i] * tbar[i] ** 2), max(slope, 0) * tau[i] / tbar[i] ** 2, jumps,
            njumps > 0)


# ---------------------------------------------------------------------- likely
def gls(d, cov):
    ci = np.linalg.inv(cov)
    one = np.ones(d.size)
    cc = one @ ci @ one
    slope = one @ ci @ d / cc
    resid = d - slope
    return slope, resid @ ci @ resid, ci @ one / cc


def ref_likely_pixel(r, usable, read_var, tbar, tau, nreads, detect, sigma=4.5):
    """GLS on differences with dense covariance; jumps by refitting every removal.

    Returns (slope, var_rnoise, var_poisson, jumps, unreliable). The search as
    documented: candidates lie above the fit (positive fitted excess; for a pair both
    parts non-negative and positive charge) and above the median difference by
    sqrt(th2 - th1) of their own noise; after the last removal at the thresholds, the
    neighbours of removed differences across a multi-read resultant are tested at
    th2 - th1; a difference left with a drop above th1 (3 sigma after a jump) marks the
    fit unreliable.
    """
    n = r.size
    m = n - 1
    dt = np.diff(tbar)
    amat = np.zeros((m, n))
    for i in range(m):
        amat[i, i], amat[i, i + 1] = -1 / dt[i], 1 / dt[i]
    d = amat @ r
    used = usable[:-1] & usable[1:]
    jumps = np.zeros(n, bool)
    if not used.any():
        i = int(np.argmax(usable))
        slope = r[i] / tbar[i]
        return (slope, read_var / (nreads[i] * tbar[i] ** 2), max(slope, 0) * tau[i] / tbar[i] ** 2,
                jumps, False)

    def cov_d(flux):
        return amat @ resultant_covariance(tbar, tau, nreads, read_var, flux) @ amat.T

    th1, th2 = chisq_thresholds(sigma)
    lift = th2 - th1
    removed = np.zeros(m, bool)
    njumps, near, worst = 0, False, 0.0
    while True:
        med = np.median(d[used])
        cov = cov_d(max(med, 0.0))
        idx = np.flatnonzero(used)
        slope, chi2, _ = gls(d[idx], cov[np.ix_(idx, idx)])
        if not detect or idx.size < 2:
            break
        ci = np.linalg.inv(cov[np.ix_(idx, idx)])
        resid = ci @ (d[idx] - slope)
        sfull = ci - np.outer(ci.sum(1), ci.sum(0)) / ci.sum()
        pos = {i: k for k, i in enumerate(idx)}

        def up(i):
            return d[i] - med > 0 and (d[i] - med) ** 2 > lift * cov[i, i]

        best1, i1, q1, best2, i2, q2, worst = 0.0, -1, 0.0, 0.0, -1, 0.0, 0.0
        for i in idx:
            keep = idx[idx != i]
            drop = chi2 - gls(d[keep], cov[np.ix_(keep, keep)])[1]
            worst = max(worst, drop)
            excess = resid[pos[i]] / sfull[pos[i], pos[i]]
            cand = up(i)
            if near:
                cand = cand and (
                    (i > 0 and nreads[i] > 1 and removed[i - 1])
                    or (i + 1 < m and nreads[i + 1] > 1 and removed[i + 1]))
            charge = excess * dt[i]
            if cand and excess > 0 and (drop > best1 or (drop == best1 and charge > q1)):
                best1, i1, q1 = drop, i, charge
            if not near and i + 1 < m and used[i + 1] and nreads[i + 1] > 1 and idx.size >= 3:
                keep2 = keep[keep != i + 1]
                drop = chi2 - gls(d[keep2], cov[np.ix_(keep2, keep2)])[1]
                k = [pos[i], pos[i + 1]]
                e = np.linalg.solve(sfull[np.ix_(k, k)], resid[k])
                charge = e[0] * dt[i] + e[1] * dt[i + 1]
                if ((up(i) or up(i + 1)) and e.min() >= 0 and charge > 0
                        and (drop > best2 or (drop == best2 and charge > q2))):
                    best2, i2, q2 = drop, i, charge
        if near:
            if best1 > lift:
                used[i1], removed[i1], jumps[i1 + 1], near = False, True, True, False
                continue
            break
        if best1 - th1 > best2 - th2 and best1 > th1:
            used[i1], removed[i1], jumps[i1 + 1] = False, True, True
        elif not best1 - th1 > best2 - th2 and best2 > th2:
            used[i2], used[i2 + 1] = False, False
            removed[i2], removed[i2 + 1] = True, True
            jumps[i2 + 1] = jumps[i2 + 2] = True
        elif njumps > 0:
            near = True
            continue
        else:
            break
        njumps += 1
    limit = th1 if njumps == 0 else CONSISTENCY_SIGMA**2
    unreliable = detect and used.sum() >= 2 and worst > limit
    idx = np.flatnonzero(used)
    cov = cov_d(max(slope, 0.0))
    slope, _, w = gls(d[idx], cov[np.ix_(idx, idx)])
    cread = (amat @ resultant_covariance(tbar, tau, nreads, read_var, 0.0) @ amat.T)[np.ix_(idx, idx)]
    cflux = (amat @ resultant_covariance(tbar, tau, nreads, 0.0, 1.0) @ amat.T)[np.ix_(idx, idx)]
    return slope, w @ cread @ w, poisson_part(slope, w @ cflux @ w, w @ cread @ w), jumps, unreliable


# ----------------------------------------------------------------------- tests
def random_pattern(rng, n):
    pattern, read = [], 1
    for _ in range(n):
        read += int(rng.integers(0, 3))
        nr = int(rng.integers(1, 6))
        pattern.append(list(range(read, read + nr)))
        read += nr
    return pattern


def random_ramps(rng, pattern, npix, read_noise, gain):
    """Noisy ramps (DN) with fluxes over five decades, some jumps and flagged resultants."""
    n = len(pattern)
    nread = pattern[-1][-1]
    flux = 10 ** rng.uniform(-1, 3.5, npix)
    e = np.cumsum(rng.poisson(flux * gain * FRAME_TIME, size=(nread, npix)), axis=0).astype(float)
    hit = rng.random(npix) < 0.3
    when = rng.integers(1, nread + 1, npix)
    size = 10 ** rng.uniform(1, 4, npix)
    for k in range(nread):
        e[k] += np.where(hit & (k + 1 >= when), size, 0.0)
    e += rng.normal(0, read_noise * gain, e.shape)
    # float32 values (what the kernels read), held in float64 for the reference
    res = (np.array([e[np.array(p) - 1].mean(axis=0) for p in pattern]) / gain).astype(np.float32).astype(float)
    gdq = np.zeros((n, npix), np.uint8)
    gdq[rng.random((n, npix)) < 0.05] = dqflags.DO_NOT_USE
    sat = rng.random(npix) < 0.1
    first_sat = rng.integers(1, n + 1, npix)
    for i in range(n):
        gdq[i, sat & (i >= first_sat)] |= dqflags.SATURATED
    return res, gdq


@pytest.mark.parametrize("algorithm", ["optimal", "likely"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernels_match_reference(algorithm, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 10))
    pattern = random_pattern(rng, n)
    npix = 300
    read_noise, gain = 6.0, 1.8
    res, gdq = random_ramps(rng, pattern, npix, read_noise, gain)
    out = fit_ramps(res[:, None, :], gdq[:, None, :], np.full((1, npix), read_noise),
                    np.full((1, npix), gain), pattern, FRAME_TIME, algorithm=algorithm,
                    return_jumps=True)
    tbar, tau, nreads = resultant_times(pattern, FRAME_TIME)
    ref = ref_optimal_pixel if algorithm == "optimal" else ref_likely_pixel
    read_var = (read_noise * gain) ** 2
    njump = nbad = 0
    for p in range(npix):
        usable = (gdq[:, p] & 3) == 0
        slope, vr, vp, jumps, bad = ref(res[:, p] * gain, usable, read_var, tbar, tau,
                                        nreads.astype(float), True)
        np.testing.assert_array_equal(out.jumps[:, 0, p] != 0, jumps, err_msg=f"pixel {p}")
        assert bool(out.dq[0, p] & dqflags.UNRELIABLE_SLOPE) == bad, f"pixel {p}"
        nbad += bad
        np.testing.assert_allclose(out.slope[0, p], slope / gain, rtol=2e-6, atol=1e-6)
        np.testing.assert_allclose(out.var_rnoise[0, p], vr / gain**2, rtol=2e-6)
        np.testing.assert_allclose(out.var_poisson[0, p], vp / gain**2, rtol=2e-6, atol=1e-12)
        njump += jumps.any()
        assert bool(out.dq[0, p] & dqflags.JUMP_DET) == jumps.any()
    # The data hold jumps, and the search must have found some of them.
    assert njump > 30


@pytest.mark.parametrize("algorithm", ["optimal", "likely"])
def test_no_jump_search_matches_reference(algorithm):
    rng = np.random.default_rng(7)
    pattern = [[1], [2, 3], [4, 5, 6, 7], [8], [9, 10, 11], [12, 13], [15, 16, 17, 18]]
    npix = 200
    res, gdq = random_ramps(rng, pattern, npix, 5.0, 2.2)
    out = fit_ramps(res[:, None, :], gdq[:, None, :], np.full((1, npix), 5.0),
                    np.full((1, npix), 2.2), pattern, FRAME_TIME, algorithm=algorithm,
                    detect_jumps=False)
    tbar, tau, nreads = resultant_times(pattern, FRAME_TIME)
    ref = ref_optimal_pixel if algorithm == "optimal" else ref_likely_pixel
    for p in range(npix):
        slope, vr, vp, _, _ = ref(res[:, p] * 2.2, (gdq[:, p] & 3) == 0, (5.0 * 2.2) ** 2, tbar, tau,
                               nreads.astype(float), False)
        np.testing.assert_allclose(out.slope[0, p], slope / 2.2, rtol=2e-6, atol=1e-6)
        np.testing.assert_allclose(out.err[0, p], np.sqrt(vr + vp) / 2.2, rtol=2e-6)
    assert out.dq.max() & dqflags.JUMP_DET == 0


@pytest.mark.slow  # compiles a second optimal kernel (about 35 s), for ramps past 64 resultants only
def test_optimal_long_ramp_without_table(monkeypatch):
    """More resultants than the coefficient tables cover (coefficients computed per
    segment, every round of the jump search computed): same results as the reference."""
    monkeypatch.setattr(ramp_optimal, "MAX_TABLE_RESULTANTS", 32)
    monkeypatch.setattr(ramp_optimal, "MAX_ROUND_RESULTANTS", 32)
    rng = np.random.default_rng(3)
    pattern = random_pattern(rng, 36)
    npix = 40
    res, gdq = random_ramps(rng, pattern, npix, 6.0, 2.0)
    out = fit_ramps(res[:, None, :], gdq[:, None, :], np.full((1, npix), 6.0), np.full((1, npix), 2.0),
                    pattern, FRAME_TIME, algorithm="optimal", return_jumps=True)
    tbar, tau, nreads = resultant_times(pattern, FRAME_TIME)
    for p in range(npix):
        slope, vr, vp, jumps, _ = ref_optimal_pixel(res[:, p] * 2.0, (gdq[:, p] & 3) == 0, 144.0, tbar, tau,
                                                 nreads.astype(float), True)
        np.testing.assert_array_equal(out.jumps[:, 0, p] != 0, jumps)
        np.testing.assert_allclose(out.slope[0, p], slope / 2.0, rtol=2e-6, atol=1e-6)
        np.testing.assert_allclose(out.var_rnoise[0, p], vr / 4.0, rtol=2e-6)


def test_optimal_even_groups_low_signal_is_least_squares():
    """Even JWST groups at low signal (P = 0, equal weights): ordinary least squares."""
    pattern = [[4 * g + 1 + k for k in range(4)] for g in range(8)]
    rng = np.random.default_rng(11)
    npix = 50
    tbar, _, _ = resultant_times(pattern, FRAME_TIME)
    res = 0.02 * tbar[:, None] + rng.normal(0, 8.0, (8, npix))
    out = fit_ramps(res[:, None, :], np.zeros((8, 1, npix), np.uint8), np.full((1, npix), 8.0),
                    np.full((1, npix), 1.0), pattern, FRAME_TIME, algorithm="optimal",
                    detect_jumps=False)
    expected = np.polyfit(tbar, res, 1)[0]
    np.testing.assert_allclose(out.slope[0], expected, rtol=1e-5, atol=1e-7)
