"""Read-level exposure generator for testing the ramp fits, independent of calpipe.simulate.

Written from the documented formats only (docs/ramp_fitting.md: a resultant is the mean
of its reads, read k happens k * frame_time after reset), it shares no code with
``calpipe.simulate`` or the kernels, so that an accuracy test cannot pass because the
generator and the fit make the same mistake.

Per pixel, read by read: Poisson electrons accumulated at the true rate, cosmic-ray
hits added at the read where they land (any read, including those of the first and
last resultants and the skipped ones), the charge clipped at full well (saturation),
Gaussian read noise per read; resultants are the means of their reads. Group DQ gets
SATURATED on every resultant from the first one holding a saturated read (what an
ideal saturation step would flag).

Units: rates in DN/s, charges and resultants in DN, read noise in DN per read, gain in
electrons per DN.
"""

from dataclasses import dataclass

import numpy as np

FRAME_TIME = 3.04
READ_NOISE = 6.0
GAIN = 2.0
FULL_WELL = 60000.0
"""Saturation level in DN (of accumulated charge, before read noise)."""
SATURATED = 2
"""The group DQ bit for saturation (docs: SATURATED = 2)."""

PATTERNS = {
    "3": [[1], [2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13]],
    "6 uneven": [[1], [2, 3], [5, 6, 7, 8], [10], [12, 13, 14, 15, 16, 17], [19, 20]],
    "8 many-read": [list(range(8 * i + 1, 8 * i + 9)) for i in range(8)],
    "24": [],
    "40": [[k] for k in range(1, 41)],
}
_read = 1
for _nr in [1, 2, 4, 2] * 6:
    PATTERNS["24"].append(list(range(_read, _read + _nr)))
    _read += _nr + (1 if _nr == 4 else 0)  # a skipped read after each 4-read resultant
del _read, _nr


@dataclass
class Exposure:
    """Generated resultants and the truth; arrays over ``npix`` pixels."""

    resultants: np.ndarray
    """float64 (n, npix), DN."""
    groupdq: np.ndarray
    """uint8 (n, npix): SATURATED from the first resultant with a saturated read."""
    rate: np.ndarray
    """float64 (npix,): true count rate, DN/s."""
    hit_read: np.ndarray
    """int64 (npix, 3): read index (>= 1) of each hit, 0 where none."""
    hit_dn: np.ndarray
    """float64 (npix, 3): charge of each hit, DN."""
    hit_sigma: np.ndarray
    """float64 (npix, 3): the hit in units of :func:`hit_noise` at its read."""
    saturation_read: np.ndarray
    """int64 (npix,): first saturated read, 0 where none."""


def pattern_times(read_pattern, frame_time=FRAME_TIME):
    """Mean time of each resultant's reads and its number of reads."""
    tbar = np.array([frame_time * np.mean(r) for r in read_pattern])
    nreads = np.array([len(r) for r in read_pattern])
    return tbar, nreads


def saturating_rate(read_pattern, fraction, frame_time=FRAME_TIME, full_well=FULL_WELL):
    """Rate (DN/s) that brings the last read to ``fraction`` of full well."""
    return fraction * full_well / (read_pattern[-1][-1] * frame_time)


def hit_noise(read_pattern, rate, read, frame_time=FRAME_TIME, read_noise=READ_NOISE, gain=GAIN):
    """Noise (DN) of the difference of the two resultants around ``read``.

    The pair is (j - 1, j) with j the first resultant whose last read is at or after
    ``read``; for a hit in the first resultant, that resultant's own noise. The
    variance of a mean of reads is computed directly from the reads' covariance
    (min of their times, times the rate) rather than from a closed form.
    """
    rate = np.broadcast_to(np.asarray(rate, float), np.shape(read))
    read = np.asarray(read)
    last = np.array([r[-1] for r in read_pattern])
    j = np.searchsorted(last, read)
    out = np.empty(read.shape)
    for jj in np.unique(j):
        sel = j == jj
        reads = [np.asarray(read_pattern[jj])] if jj == 0 else [
            np.asarray(read_pattern[jj - 1]), np.asarray(read_pattern[jj])]
        # Weights of each read in (R_j - R_{j-1}) or R_0.
        k = np.concatenate(reads)
        w = np.concatenate([-np.full(len(reads[0]), 1.0 / len(reads[0])),
                            np.full(len(reads[1]), 1.0 / len(reads[1]))] if jj > 0
                           else [np.full(len(reads[0]), 1.0 / len(reads[0]))])
        t = k * frame_time
        poisson = w @ np.minimum.outer(t, t) @ w  # per unit rate (e/s)
        read_var = (read_noise * gain) ** 2 * np.sum(w * w)
        out[sel] = np.sqrt(read_var + poisson * rate[sel] * gain) / gain
    return out


def generate(read_pattern, rate, rng, *, nhits=0, hit_sigma=(3.0, 1000.0), frame_time=FRAME_TIME,
             read_noise=READ_NOISE, gain=GAIN, full_well=FULL_WELL):
    """Generate one resultant set per pixel.

    Parameters
    ----------
    read_pattern : list of lists of read indices
    rate : array (npix,), DN/s
    rng : numpy Generator
    nhits : int or int array (npix,) in 0..3: cosmic-ray hits per pixel, at reads drawn
        uniformly from 1 to the last read (distinct reads)
    hit_sigma : (low, high): hit sizes drawn log-uniformly in units of :func:`hit_noise`
    full_well : DN; None for no saturation

    Returns
    -------
    Exposure
    """
    rate = np.asarray(rate, dtype=np.float64)
    npix = rate.size
    nread = read_pattern[-1][-1]
    nhits = np.broadcast_to(np.asarray(nhits), (npix,))
    if np.any((nhits < 0) | (nhits > 3)):
        raise ValueError("nhits must be 0 to 3 per pixel")
    hit_read = np.zeros((npix, 3), np.int64)
    hit_dn = np.zeros((npix, 3))
    sig = np.zeros((npix, 3))
    for h in range(3):
        has = nhits > h
        while True:
            draw = rng.integers(1, nread + 1, npix)
            clash = (draw[:, None] == hit_read[:, :h]).any(axis=1) & has
            hit_read[has & ~clash, h] = draw[has & ~clash]
            if not np.any(has & (hit_read[:, h] == 0)):
                break
            has = has & (hit_read[:, h] == 0)
        has = nhits > h
        lo, hi = np.log10(hit_sigma[0]), np.log10(hit_sigma[1])
        sig[has, h] = 10 ** rng.uniform(lo, hi, has.sum())
        hit_dn[has, h] = sig[has, h] * hit_noise(read_pattern, rate[has], hit_read[has, h],
                                                 frame_time, read_noise, gain)

    which = {k: i for i, r in enumerate(read_pattern) for k in r}
    n = len(read_pattern)
    sums = np.zeros((n, npix))
    charge = np.zeros(npix)  # electrons
    sat_read = np.zeros(npix, np.int64)
    well = np.inf if full_well is None else full_well * gain
    lam = rate * gain * frame_time
    for k in range(1, nread + 1):
        charge += rng.poisson(lam)
        for h in range(3):
            charge += np.where(hit_read[:, h] == k, hit_dn[:, h] * gain, 0.0)
        full = charge >= well
        sat_read[full & (sat_read == 0)] = k
        if k in which:
            value = np.minimum(charge, well) + rng.normal(0.0, read_noise * gain, npix)
            sums[which[k]] += value
    resultants = sums / np.array([len(r) for r in read_pattern])[:, None] / gain
    groupdq = np.zeros((n, npix), np.uint8)
    last = np.array([r[-1] for r in read_pattern])
    for i in range(n):
        groupdq[i, (sat_read > 0) & (sat_read <= last[i])] = SATURATED
    return Exposure(resultants, groupdq, rate, hit_read, hit_dn, sig, sat_read)
