"""Read-level ramps for the detector-step tests, built here from first principles.

Nothing is shared with ``calpipe.simulate``: charge accumulates read by read with Poisson
noise, the response bends with a polynomial of our choosing, reads above full well stay at
the measured full well, a pedestal and Gaussian read noise are added to every read, and
each resultant is the rounded mean of the reads its pattern lists.

The response is defined by its correction ``c = P(m) = m (1 + 0.03 t + 0.6 t^5)``,
``t = m / FULL_WELL`` (measured counts ``m`` to linear counts ``c``, DN, bias removed), so
the linearity coefficients are exact; its knee near full well makes averaging reads matter.
"""

import numpy as np

FRAME_TIME = 3.04
FULL_WELL = 48000.0  # measured counts at full well, DN
GAIN = 2.0  # e/DN
READ_NOISE = 5.5  # DN per read

COEFFS = np.zeros(7)
COEFFS[1] = 1.0
COEFFS[2] = 0.03 / FULL_WELL
COEFFS[6] = 0.6 / FULL_WELL**5

_M = np.linspace(0.0, FULL_WELL, 40001)
_C = np.polynomial.polynomial.polyval(_M, COEFFS)


def linear(measured):
    """Linear counts of measured counts (the exact correction)."""
    return np.polynomial.polynomial.polyval(measured, COEFFS)


def measured(counts):
    """Measured counts of linear counts; at and beyond full well, the measured full well."""
    return np.interp(counts, _C, _M)


def coefficient_cube(shape):
    """The correction's coefficients for every pixel, float32 (ncoeff, *shape)."""
    return np.broadcast_to(COEFFS.astype(np.float32)[:, None, None], (COEFFS.size, *shape)).copy()


def counts_for(level, pattern):
    """Linear count rate (DN/s) whose noiseless measured counts reach ``level`` at the last read."""
    return float(linear(level)) / (pattern[-1][-1] * FRAME_TIME)


def ramps(rate, pattern, *, seed, pedestal=0.0, noise=True, hits=()):
    """Resultants (nres, npix) float32 for linear count rates ``rate`` (DN/s, (npix,)).

    ``hits``: (pixel, read, DN) cosmic rays, added to that read and every later one.
    Returns ``(resultants, reads)``, ``reads`` the measured counts of every read without
    read noise (nreads, npix).
    """
    rng = np.random.default_rng(seed)
    rate = np.asarray(rate, dtype=np.float64)
    nreads = pattern[-1][-1]
    electrons = rate * GAIN * FRAME_TIME
    if noise:
        step = rng.poisson(np.broadcast_to(electrons, (nreads, rate.size))) / GAIN
    else:
        step = np.broadcast_to(electrons / GAIN, (nreads, rate.size))
    counts = np.cumsum(step, axis=0)
    for pixel, read, amplitude in hits:
        counts[read - 1:, pixel] += amplitude
    reads = measured(counts)
    observed = pedestal + reads
    if noise:
        observed = observed + READ_NOISE * rng.standard_normal(observed.shape)
    resultants = np.stack([observed[np.asarray(r) - 1].mean(axis=0) for r in pattern])
    if noise:
        resultants = np.rint(resultants)
    return resultants.astype(np.float32), reads
