"""Ramp-fit accuracy cases with known truth, shared by the accuracy tests and
benchmarks/ramp_accuracy.py.

Two sources of ramps: :func:`simulate_ramps` (Poisson electrons accumulated read by read,
Gaussian read noise per read, reads averaged into resultants by the read pattern, one
jump at a resultant's first read) for :func:`accuracy_table`, and the read-level
generator (:mod:`readlevel`, no code shared with calpipe: hits at random reads, several
per pixel, long multi-read resultants) for :func:`multi_hit_case` and
:func:`clean_case`. :func:`fit` runs calpipe's fits, or stcal's when it is installed.
"""

import math

import numpy as np

from calpipe import dqflags
from calpipe.kernels.ramp import fit_ramps, resultant_times

from . import readlevel as rl

FRAME_TIME = 3.04
READ_NOISE = 6.0  # DN per read
GAIN = 2.0  # e/DN
FLUXES = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
JUMP_SIZES = (3.0, 5.0, 10.0, 30.0)

READ_PATTERNS = {
    6: [[1], [2, 3], [4, 5, 6, 7], [8], [9, 10, 11, 12, 13, 14], [15, 16]],
    12: [[1], [2], [3, 4], [5, 6, 7], [8], [9, 10], [11, 12, 13, 14], [15], [16, 17],
         [18, 19, 20], [21], [22, 23, 24, 25]],
}


def simulate_ramps(flux, read_pattern, frame_time, read_noise, gain, rng,
                   jump_read=None, jump_dn=None):
    """Resultants (n, npix) in DN for true count rates ``flux`` (DN/s, shape (npix,)).

    ``jump_read`` / ``jump_dn`` (shape (npix,)): a jump of ``jump_dn`` DN appearing from
    read ``jump_read`` on (0: no jump). ``read_noise`` is DN per read, ``gain`` e/DN.
    """
    flux = np.asarray(flux, dtype=np.float64)
    npix = flux.shape[0]
    nread = max(max(r) for r in read_pattern)
    lam = flux * gain * frame_time
    electrons = np.cumsum(rng.poisson(np.broadcast_to(lam, (nread, npix))), axis=0).astype(np.float64)
    if jump_read is not None:
        for k in range(nread):
            electrons[k] += np.where((jump_read > 0) & (k + 1 >= jump_read), jump_dn * gain, 0.0)
    electrons += rng.normal(0.0, read_noise * gain, size=electrons.shape)
    out = np.empty((len(read_pattern), npix))
    for i, reads in enumerate(read_pattern):
        out[i] = electrons[np.asarray(reads) - 1].mean(axis=0) / gain
    return out


def difference_noise(flux, k, read_pattern, frame_time, read_noise, gain):
    """Noise (DN) of resultant k minus resultant k-1 at count rate ``flux`` (DN/s)."""
    tbar, tau, nreads = resultant_times(read_pattern, frame_time)
    sig2 = (read_noise * gain) ** 2
    var_e = sig2 * (1 / nreads[k - 1] + 1 / nreads[k]) + flux * gain * (
        tau[k - 1] + tau[k] - 2 * tbar[k - 1])
    return np.sqrt(var_e) / gain


def robust_std(x):
    return 1.4826 * np.median(np.abs(x - np.median(x)))


def fit(algorithm, res, read_noise, gain, read_pattern, frame_time, groupdq=None):
    """Slope, err, pixel dq and per-resultant jump flags of a (n, npix) ramp set."""
    n, npix = res.shape
    if groupdq is None:
        groupdq = np.zeros((n, npix), np.uint8)
    if algorithm in ("likely", "optimal"):
        out = fit_ramps(res[:, None, :], groupdq[:, None, :],
                        np.full((1, npix), read_noise, np.float32), np.full((1, npix), gain, np.float32),
                        read_pattern, frame_time, algorithm=algorithm, return_jumps=True)
        return out.slope[0], out.err[0], out.dq[0], out.jumps[:, 0]
    if algorithm == "stcal-optimal":
        return stcal_optimal(res, read_noise, gain, read_pattern, frame_time, groupdq)
    if algorithm == "stcal-likely":
        return stcal_likely(res, read_noise, gain, read_pattern, frame_time, groupdq=groupdq)
    raise ValueError(algorithm)


def stcal_optimal(res, read_noise, gain, read_pattern, frame_time, groupdq=None):
    """stcal's Cython Casertano fit with jumps; res (n, npix) DN. Returns DN/s outputs."""
    from stcal.ramp_fitting.ols_cas22_fit import fit_ramps_casertano

    n, npix = res.shape
    gdq = np.zeros(res.shape, np.int32) if groupdq is None else groupdq.astype(np.int32)
    out = fit_ramps_casertano(
        (res * gain).astype(np.float32), gdq,
        np.full(npix, read_noise * gain, np.float32), frame_time, read_pattern, use_jump=True)
    slope = out.parameters[:, 1] / gain
    err = np.sqrt(out.variances[:, 2]) / gain
    jumps = (out.dq & dqflags.JUMP_DET).astype(np.uint8)
    dq = np.where(jumps.any(axis=0), dqflags.JUMP_DET, 0).astype(np.uint32)
    return slope, err, dq, jumps


def stcal_likely(res, read_noise, gain, read_pattern, frame_time, rows=None, groupdq=None):
    """stcal's likelihood fit (4.5 sigma); res (n, npix) or (n, ny, nx) DN."""
    from stcal.ramp_fitting import likely_fit
    from stcal.ramp_fitting.ramp_fit_class import RampData

    cube = res if res.ndim == 3 else res[:, None, :]
    n, ny, nx = cube.shape
    rd = RampData()
    gdq = np.zeros((1, n, ny, nx), np.uint8)
    if groupdq is not None:
        gdq[0] = groupdq.reshape(n, ny, nx)
    rd.set_arrays(cube[None].astype(np.float32), gdq, np.zeros((ny, nx), np.uint32),
                  np.zeros((ny, nx), np.float32))
    rd.set_meta(name="WFI", frame_time=frame_time, group_time=frame_time, groupgap=0, nframes=1)
    rd.set_dqflags(dqflags.pixel)
    rd.read_pattern = [[k * frame_time for k in reads] for reads in read_pattern]
    rd.rejection_threshold = 4.5
    # stcal divides its read noise by sqrt(2) (JWST read noise is a CDS figure).
    rn = np.full((ny, nx), read_noise * math.sqrt(2.0), np.float32)
    g = np.full((ny, nx), gain, np.float32)
    image, _, _ = likely_fit.likely_ramp_fit(rd, rn, g)
    jumps = (rd.groupdq[0] & dqflags.JUMP_DET).astype(np.uint8)
    slope, err, dq = image["slope"], image["err"], image["dq"]
    if res.ndim == 2:
        return slope[0], err[0], dq[0], jumps[:, 0]
    return slope, err, dq, jumps


def accuracy_table(algorithm, npix=20000, fluxes=FLUXES, jump_sizes=JUMP_SIZES,
                   read_pattern=None, frame_time=FRAME_TIME, read_noise=READ_NOISE,
                   gain=GAIN, seed=1):
    """One row per flux: clean-pixel residual statistics, false jumps, completeness.

    Keys: flux, median_z, std_z (robust), slope_std (robust, DN/s), false_jump_rate,
    completeness {jump size: fraction of pixels whose jump was found and taken out of
    the fit (see below)},
    pixel_completeness {size: fraction with JUMP_DET at all}. Jumps are placed at the
    first read of a random resultant 1..n-1.
    """
    if read_pattern is None:
        read_pattern = READ_PATTERNS[6]
    rng = np.random.default_rng(seed)
    n = len(read_pattern)
    rows = []
    for flux in fluxes:
        truth = np.full(npix, float(flux))
        res = simulate_ramps(truth, read_pattern, frame_time, read_noise, gain, rng)
        slope, err, dq, _ = fit(algorithm, res, read_noise, gain, read_pattern, frame_time)
        z = (slope - truth) / err
        row = {
            "flux": float(flux),
            "median_z": float(np.median(z)),
            "std_z": float(robust_std(z)),
            "slope_std": float(robust_std(slope)),
            "false_jump_rate": float(np.mean((dq & dqflags.JUMP_DET) != 0)),
            "completeness": {},
            "pixel_completeness": {},
        }
        for size in jump_sizes:
            k = rng.integers(1, n, size=npix)
            first_read = np.array([read_pattern[i][0] for i in range(n)])[k]
            sigma = np.array([difference_noise(flux, kk, read_pattern, frame_time, read_noise, gain)
                              for kk in range(1, n)])[k - 1]
            res = simulate_ramps(truth, read_pattern, frame_time, read_noise, gain, rng,
                                 jump_read=first_read, jump_dn=size * sigma)
            _, _, dq, jumps = fit(algorithm, res, read_noise, gain, read_pattern, frame_time)
            # Found: the difference holding the jump is out of the fit. The likelihood
            # fits flag the later resultant of a removed difference; the optimal fits
            # flag both resultants around the largest excess, which for a double
            # difference can be the pair just before the jump.
            found = jumps[k, np.arange(npix)] != 0
            if algorithm.endswith("optimal"):
                found |= jumps[k - 1, np.arange(npix)] != 0
            row["completeness"][size] = float(np.mean(found))
            row["pixel_completeness"][size] = float(np.mean((dq & dqflags.JUMP_DET) != 0))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------
# Cases from the read-level generator (readlevel.py), which shares no code with
# calpipe: hits at random reads, several per pixel, long multi-read resultants.

FRACTIONS = (0.0, 1e-3, 1e-2, 0.1, 0.5, 0.95)
"""Clean-pixel flux bins: the last read reaches this fraction of full well."""
_BEYOND_JUMP = ~np.uint32(dqflags.JUMP_DET | dqflags.SATURATED)


def multi_hit_case(algorithm, nhits, npix, seed=1, pattern="6 uneven", min_sigma=20.0):
    """Pixels with ``nhits`` hits of ``min_sigma`` to 1000 sigma at random reads, rates
    log-uniform from 0.1 DN/s to 0.9 of saturation.

    Keys: bad_z (fraction with |z| > 5 and no flag beyond JUMP_DET/SATURATED), flagged
    (fraction DO_NOT_USE), rstd_z (robust std of z of the pixels not flagged beyond
    JUMP_DET), found (fraction with JUMP_DET).
    """
    rng = np.random.default_rng(seed)
    p = rl.PATTERNS[pattern]
    rate = 10 ** rng.uniform(-1, np.log10(rl.saturating_rate(p, 0.9)), npix)
    exp = rl.generate(p, rate, rng, nhits=nhits, hit_sigma=(min_sigma, 1000.0))
    slope, err, dq, _ = fit(algorithm, exp.resultants, rl.READ_NOISE, rl.GAIN, p, rl.FRAME_TIME,
                             exp.groupdq)
    z = (slope - rate) / err
    plain = (dq & _BEYOND_JUMP) == 0
    return {"bad_z": float(np.mean((np.abs(z) > 5) & plain)),
            "flagged": float(np.mean((dq & dqflags.DO_NOT_USE) != 0)),
            "rstd_z": float(robust_std(z[plain])),
            "found": float(np.mean((dq & dqflags.JUMP_DET) != 0))}


def clean_case(algorithm, pattern, fraction, npix, seed=1):
    """Clean pixels at one rate (``fraction`` of full well at the last read).

    Keys: rate, median_z, std_z (robust), false_jumps (fraction with JUMP_DET),
    flagged (fraction DO_NOT_USE), bias_se (mean slope minus truth in standard errors
    of the mean).
    """
    rng = np.random.default_rng(seed)
    p = rl.PATTERNS[pattern]
    rate = np.full(npix, rl.saturating_rate(p, fraction))
    exp = rl.generate(p, rate, rng)
    slope, err, dq, _ = fit(algorithm, exp.resultants, rl.READ_NOISE, rl.GAIN, p, rl.FRAME_TIME,
                             exp.groupdq)
    z = (slope - rate) / err
    return {"rate": float(rate[0]), "median_z": float(np.median(z)), "std_z": float(robust_std(z)),
            "false_jumps": float(np.mean((dq & dqflags.JUMP_DET) != 0)),
            "flagged": float(np.mean((dq & dqflags.DO_NOT_USE) != 0)),
            "bias_se": float((slope.mean() - rate[0]) / (slope.std() / np.sqrt(npix)))}
