"""Synthetic up-the-ramp exposures: the detector, the sky, and the read-by-read ramp.

The model (documented in docs/simulator.md) is the mirror image of the calibration
kernels: saturation, refpix, linearity, ramp fitting, dark and flat each undo one part
of what happens here, so the calibrated image can be compared with the truth.

Coordinates: arrays are indexed ``[y, x]``. The detector is ``size x size`` pixels with a
``BORDER``-pixel reference border; the science pixels are ``[BORDER:-BORDER, BORDER:-BORDER]``
and science-pixel coordinates put the centre of the first science pixel at (0, 0).
"""

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from calpipe import dqflags
from calpipe.detector import BORDER
from calpipe.errors import InputError
from calpipe.kernels.threads import on_threads

NCHANNELS = 32
FRAME_TIME = 3.04
NCOEFF = 6
ADC_MAX = 65535

# The random streams: each part of the simulation draws from its own, so that changing
# one part (for instance switching off the bias) leaves every other draw unchanged.
_DETECTOR, _SCENE, _PHOTONS, _READS, _COSMICS, _BIAS = range(6)


def _rng(seed, stream):
    return np.random.default_rng(np.random.SeedSequence([int(seed), stream]))


# --------------------------------------------------------------------------- read patterns
def default_read_pattern(nresultants):
    """An uneven read pattern: a single first read, groups growing to six reads, a single last read.

    Six resultants give ``[[1], [2, 3], [4..7], [8..13], [14..19], [20]]``: 20 reads, 60.8 s
    at the default frame time.
    """
    nresultants = int(nresultants)
    if nresultants < 1:
        raise ValueError(f"nresultants must be at least 1, got {nresultants}")
    if nresultants == 1:
        return [[1]]
    sizes = [1] + [min(2 * j, 6) for j in range(1, nresultants - 1)] + [1]
    pattern, read = [], 1
    for n in sizes:
        pattern.append(list(range(read, read + n)))
        read += n
    return pattern


def _runs(first, sizes, gap=0):
    """Resultants of ``sizes`` consecutive reads from read ``first``, ``gap`` reads skipped between."""
    pattern, read = [], first
    for n in sizes:
        pattern.append(list(range(read, read + n)))
        read += n + gap
    return pattern


READ_PATTERNS = {
    "uneven6": default_read_pattern(6),
    "skip6": _runs(1, [1, 2, 4, 6, 6, 1], gap=1),
    "3": _runs(1, [1, 6, 8]),
    "8x8": _runs(1, [8] * 8),
    "24": _runs(1, [1] * 24),
    "40": _runs(1, [1] * 40),
}
"""Named read patterns for ``calpipe simulate --read-pattern``: ``uneven6`` the default;
``skip6`` uneven with one read skipped between resultants; ``3`` three resultants (1, 6
and 8 reads); ``8x8`` eight resultants of eight reads; ``24`` and ``40`` single reads."""


def parse_read_pattern(text):
    """A read pattern from a name in :data:`READ_PATTERNS` or an explicit list: resultants
    separated by ``;``, reads by ``,``, ranges as ``a-b`` (``"1;2,3;4-7;8"``)."""
    text = str(text).strip()
    if text in READ_PATTERNS:
        return [list(reads) for reads in READ_PATTERNS[text]]
    pattern = []
    try:
        for group in text.split(";"):
            reads = []
            for item in group.split(","):
                lo, _, hi = item.strip().partition("-")
                reads.extend(range(int(lo), int(hi or lo) + 1))
            pattern.append(reads)
    except ValueError:
        raise InputError(
            f"read pattern {text!r} is neither one of {', '.join(READ_PATTERNS)} nor a list like '1;2,3;4-7;8'"
        ) from None
    return check_read_pattern(pattern)


def check_read_pattern(read_pattern):
    """Validate a read pattern (lists of increasing read indices >= 1); return it as lists of ints."""
    pattern = [[int(k) for k in reads] for reads in read_pattern]
    if not pattern or any(not reads for reads in pattern):
        raise ValueError("read_pattern needs at least one resultant and at least one read in each")
    flat = [k for reads in pattern for k in reads]
    if flat[0] < 1 or any(b <= a for a, b in zip(flat, flat[1:])):
        raise ValueError(f"read indices must be >= 1 and strictly increasing, got {pattern}")
    return pattern


def mean_read_times(read_pattern, frame_time=FRAME_TIME):
    """Mean time (s after the reset) of each resultant."""
    return np.array([frame_time * np.mean(reads) for reads in read_pattern])


# --------------------------------------------------------------------------- detector
@dataclass
class Detector:
    """Per-pixel properties of one detector (full ``size x size`` arrays, border included)."""

    size: int
    gain: np.ndarray  # e/DN
    readnoise: np.ndarray  # DN per read
    dark: np.ndarray  # DN/s (0 on the border and on dead pixels)
    flat: np.ndarray  # relative response (1 on the border, 0 on dead pixels)
    full_well: np.ndarray  # linear counts (DN) at which the pixel saturates
    nl_a: np.ndarray  # quadratic deficit: m = c (1 - a u - b u^2), u = c / full_well
    nl_b: np.ndarray  # cubic deficit
    pedestal: np.ndarray  # (nchannels,) DN
    mask: np.ndarray  # uint32 bad-pixel flags
    dead: np.ndarray  # bool
    no_sat_check: np.ndarray  # bool: saturation reference carries NO_SAT_CHECK
    nan_threshold: np.ndarray  # bool: saturation threshold is NaN
    nan_linearity: np.ndarray  # bool: linearity coefficients are NaN
    zero_linearity: np.ndarray  # bool: linearity coefficients are all zero
    temperature: float = 95.0  # K
    sat_fraction: float = 0.98  # threshold as a fraction of the measured full well
    nchannels: int = NCHANNELS
    border: int = BORDER

    @property
    def science(self):
        b = self.border
        return (slice(b, self.size - b), slice(b, self.size - b))

    @property
    def measured_full_well(self):
        """Measured counts (DN above bias) of a pixel at full well: ``N(full_well)``."""
        return self.full_well * (1 - self.nl_a - self.nl_b)

    @property
    def saturation_level(self):
        """Measured counts above bias flagged as saturated (below the hard ceiling by a margin
        much larger than the read noise and bias drifts)."""
        return (self.sat_fraction * self.measured_full_well).astype(np.float32)

    def channel_of_column(self):
        return np.arange(self.size) // (self.size // self.nchannels)


def check_size(size):
    size = int(size)
    if size < 64 or size % NCHANNELS:
        raise ValueError(f"detector size must be a multiple of {NCHANNELS} and at least 64, got {size}")
    return size


def _pick(rng, candidates, counts):
    """Disjoint random subsets of ``candidates`` (flat indices), one per count."""
    chosen = rng.choice(candidates, size=sum(counts), replace=False)
    out, start = [], 0
    for n in counts:
        out.append(chosen[start : start + n])
        start += n
    return out


def make_detector(size=4096, seed=0):
    """A detector with realistic per-pixel properties, reproducible from ``seed``."""
    size = check_size(size)
    rng = _rng(seed, _DETECTOR)
    shape = (size, size)
    b = BORDER
    sci = (slice(b, size - b), slice(b, size - b))
    nsci = (size - 2 * b) ** 2

    gain = np.clip(rng.normal(2.0, 0.05, shape), 1.7, 2.3).astype(np.float32)
    readnoise = np.clip(rng.normal(5.5, 0.3, shape), 4.0, 8.0).astype(np.float32)

    dark = np.zeros(shape, np.float32)
    dark[sci] = 0.01 * np.exp(rng.normal(0.0, 0.5, (size - 2 * b,) * 2))

    # flat: a smooth large-scale pattern of a few per cent, plus 1 % pixel-to-pixel
    yy, xx = np.mgrid[0 : size - 2 * b, 0 : size - 2 * b].astype(np.float32) / (size - 2 * b)
    phase = rng.uniform(0, 2 * np.pi, 3)
    smooth = (
        0.02 * np.cos(2 * np.pi * xx + phase[0])
        + 0.015 * np.cos(2 * np.pi * yy + phase[1])
        + 0.01 * np.cos(np.pi * (xx + yy) + phase[2])
    )
    del yy, xx
    flat = np.ones(shape, np.float32)
    flat[sci] = np.clip(1.0 + smooth + rng.normal(0.0, 0.01, smooth.shape), 0.85, 1.15)
    del smooth

    full_well = (52000.0 * (1 + 0.015 * rng.standard_normal(shape))).astype(np.float32)
    nl_a = rng.uniform(0.025, 0.045, shape).astype(np.float32)
    nl_b = rng.uniform(0.005, 0.02, shape).astype(np.float32)
    pedestal = rng.uniform(4000.0, 7000.0, NCHANNELS)

    # bad pixels: disjoint sets of science pixels, at least one of each kind
    rows, cols = np.divmod(np.arange(nsci), size - 2 * b)
    science_flat = (rows + b) * size + (cols + b)
    counts = [max(1, round(f * nsci)) for f in (5e-4, 2e-3, 1e-4, 1e-4, 1e-4, 1e-4, 1e-4)]
    dead_i, hot_i, nosat_i, nanthr_i, nanlin_i, zerolin_i, _ = _pick(rng, science_flat, counts)

    def flags(indices):
        out = np.zeros(shape, bool)
        out.flat[indices] = True
        return out

    dead = flags(dead_i)
    flat[dead] = 0.0
    dark[dead] = 0.0
    dark.flat[hot_i] = 10 ** rng.uniform(np.log10(0.5), np.log10(50.0), hot_i.size)

    mask = np.zeros(shape, np.uint32)
    mask[:b, :] = mask[-b:, :] = mask[:, :b] = mask[:, -b:] = dqflags.REFERENCE_PIXEL
    mask[dead] |= dqflags.DEAD | dqflags.DO_NOT_USE
    mask.flat[hot_i] |= dqflags.HOT
    # a pixel this hot fills a noticeable part of its well with dark current alone
    mask[dark > 10.0] |= dqflags.DO_NOT_USE

    return Detector(
        size=size,
        gain=gain,
        readnoise=readnoise,
        dark=dark,
        flat=flat,
        full_well=full_well,
        nl_a=nl_a,
        nl_b=nl_b,
        pedestal=pedestal,
        mask=mask,
        dead=dead,
        no_sat_check=flags(np.concatenate([nosat_i, nanthr_i])),
        nan_threshold=flags(nanthr_i),
        nan_linearity=flags(nanlin_i),
        zero_linearity=flags(zerolin_i),
    )


def nonlinear(c, a, b, full_well):
    """Measured counts for linear counts ``c``: ``c (1 - a u - b u^2)``, ``u = min(c, full_well) / full_well``;
    counts beyond full well read as at full well."""
    c = np.minimum(c, full_well)
    u = c / full_well
    return c * (1 - a * u - b * u * u)


@njit(nogil=True, cache=True)
def _fit_inverse(worker, nworkers, a, b, full_well, nodes, pinv, coeffs):
    """Per pixel, fit c/m as a polynomial in m (measured counts) over 0..full well.

    Fitting the ratio c/m (close to 1) makes the fit's error a relative error on c, and
    forces c(0) = 0; with normalized units the design matrix is the same for every pixel.
    """
    ny, nx = a.shape
    nnodes = nodes.size
    nfit = pinv.shape[0]
    for y in range(worker, ny, nworkers):
        ratio = np.empty(nnodes)
        for x in range(nx):
            aa = np.float64(a[y, x])
            bb = np.float64(b[y, x])
            umax = 1.0 - aa - bb  # measured full well in units of full_well
            for j in range(nnodes):
                u = nodes[j] * umax
                xx = u
                for _ in range(30):  # Newton on x - a x^2 - b x^3 = u
                    f = xx - aa * xx * xx - bb * xx * xx * xx - u
                    xx -= f / (1.0 - 2.0 * aa * xx - 3.0 * bb * xx * xx)
                    if abs(f) < 1e-15:
                        break
                ratio[j] = xx / u
            fw = np.float64(full_well[y, x])
            coeffs[0, y, x] = 0.0
            for k in range(nfit):
                e = 0.0
                for j in range(nnodes):
                    e += pinv[k, j] * ratio[j]
                # e t^k with t = m / (umax fw)  ->  coefficient of m^(k+1)
                coeffs[k + 1, y, x] = e / (umax**k * fw**k)


def linearity_coefficients(detector, ncoeff=NCOEFF):
    """Per-pixel polynomial coefficients (ncoeff, N, N) float32 mapping measured to linear counts.

    Includes the pixels whose coefficients are deliberately NaN or all zero.
    """
    # Chebyshev nodes on (0, 1.02]: a little beyond full well, for noisy reads there
    nnodes = 4 * ncoeff
    t = 0.51 * (1 - np.cos(np.pi * (np.arange(nnodes) + 0.5) / nnodes))
    design = np.vander(t, ncoeff - 1, increasing=True)
    pinv = np.linalg.pinv(design)
    coeffs = np.empty((ncoeff, detector.size, detector.size), np.float32)
    on_threads(_fit_inverse, detector.nl_a.shape[0], detector.nl_a, detector.nl_b, detector.full_well, t,
               pinv, coeffs)
    coeffs[:, detector.nan_linearity] = np.nan
    coeffs[:, detector.zero_linearity] = 0.0
    return coeffs


# --------------------------------------------------------------------------- sky
PSF_CORE_SIGMA = 0.85  # pixels
PSF_HALO_SIGMA = 2.5
PSF_HALO_FRACTION = 0.15


_erf_ufunc = np.frompyfunc(math.erf, 1, 1)


def _erf(values):
    return _erf_ufunc(values).astype(np.float64)


def _pixel_integrals(edges_lo, centre, sigma):
    """Fraction of a 1-D Gaussian falling in unit pixels starting at ``edges_lo``."""
    scale = 1.0 / (np.sqrt(2.0) * sigma)
    return 0.5 * (_erf((edges_lo + 1 - centre) * scale) - _erf((edges_lo - centre) * scale))


def render_sources(shape, x, y, flux):
    """Image (float32, DN/s) of point sources at science-pixel positions ``x, y`` with total ``flux``.

    The PSF is a core Gaussian plus a faint wide halo, integrated over each pixel, so a
    source's pixels sum to its flux (less what falls off the array). This is the one
    place where sources are placed: a catalog projected through a WCS comes in here too.
    """
    image = np.zeros(shape, np.float64)
    x, y, flux = (np.atleast_1d(np.asarray(v, np.float64)) for v in (x, y, flux))
    radius = int(np.ceil(6 * PSF_HALO_SIGMA))
    offsets = np.arange(-radius, radius + 1)
    for xs, ys, fs in zip(x, y, flux):
        ix, iy = int(np.floor(xs + 0.5)), int(np.floor(ys + 0.5))
        cols, rows = ix + offsets, iy + offsets
        keep_c = (cols >= 0) & (cols < shape[1])
        keep_r = (rows >= 0) & (rows < shape[0])
        if not keep_c.any() or not keep_r.any():
            continue
        cols, rows = cols[keep_c], rows[keep_r]
        stamp = np.zeros((rows.size, cols.size))
        for sigma, weight in ((PSF_CORE_SIGMA, 1 - PSF_HALO_FRACTION), (PSF_HALO_SIGMA, PSF_HALO_FRACTION)):
            gx = _pixel_integrals(cols - 0.5, xs, sigma)
            gy = _pixel_integrals(rows - 0.5, ys, sigma)
            stamp += weight * np.outer(gy, gx)
        image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] += fs * stamp
    return image.astype(np.float32)


def make_scene(shape, seed=0, background=0.6, star_density=1 / 3000.0, sources=None):
    """Sky flux (DN/s, float32, science pixels) and its source list.

    Background ~0.6 DN/s with a 10 % gradient. The stars are ``sources`` (``{"x", "y",
    "flux"}`` in science pixels, e.g. a catalog projected through a WCS) when given;
    otherwise uniformly placed with a power-law flux distribution N(>F) ~ F^-0.8 from
    2 DN/s, at least one bright enough to saturate.
    Returns ``(flux_image, sources)``.
    """
    rng = _rng(seed, _SCENE)
    ny, nx = shape
    if sources is None:
        nstars = max(4, int(round(ny * nx * star_density)))
        x = rng.uniform(-0.5, nx - 0.5, nstars)
        y = rng.uniform(-0.5, ny - 0.5, nstars)
        flux = np.minimum(2.0 * rng.uniform(0, 1, nstars) ** (-1 / 0.8), 3e5)
        # every exposure exercises saturation: its brightest star saturates within seconds
        brightest = np.argmax(flux)
        flux[brightest] = max(flux[brightest], 2e4)
        sources = {"x": x, "y": y, "flux": flux}
    gx, gy = rng.uniform(-0.1, 0.1, 2)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    image = background * (1 + gx * (xx / nx - 0.5) * 2 + gy * (yy / ny - 0.5) * 2)
    del yy, xx
    image = image.astype(np.float32) + render_sources(shape, sources["x"], sources["y"], sources["flux"])
    return image, sources


# --------------------------------------------------------------------------- the ramp
@njit(nogil=True, cache=True)
def _add_read(worker, nworkers, acc, counts, a, b, full_well, readnoise, z, colbias, rowbias, border, flood,
              respond):
    """Add one read (bias + N(counts) + read noise) to the resultant's running sum."""
    n = acc.shape[0]
    for y in range(worker, n, nworkers):
        for x in range(n):
            v = colbias[x] + rowbias[y] + readnoise[y, x] * z[y, x]
            science = border <= y < n - border and border <= x < n - border
            if flood or (science and respond[y, x]):
                fw = full_well[y, x]
                c = fw if flood else min(counts[y - border, x - border], fw)
                u = c / fw
                v += c * (1.0 - a[y, x] * u - b[y, x] * u * u)
            acc[y, x] += v


@dataclass
class Exposure:
    """A simulated raw exposure, the detector it was taken with, and the truth."""

    raw: np.ndarray  # uint16 (nresultants, N, N)
    read_pattern: list
    frame_time: float
    detector: Detector
    truth: dict = field(default_factory=dict)


def _bias_per_read(detector, nreads, frame_time, seed):
    """Per read: channel offsets (nreads, nchannels) and row common mode (nreads, N), DN."""
    rng = _rng(seed, _BIAS)
    t = frame_time * np.arange(1, nreads + 1)
    trend = rng.normal(0.0, 0.3, detector.nchannels)  # DN/s, per channel
    common = rng.normal(0.0, 3.0, nreads)  # all channels together, per read
    jitter = rng.normal(0.0, 1.5, (nreads, detector.nchannels))
    channel = detector.pedestal[None, :] + trend[None, :] * t[:, None] + common[:, None] + jitter
    rows = np.arange(detector.size)
    amplitudes, periods = np.array([4.0, 2.0, 1.0]), np.array([2900.0, 1100.0, 450.0])
    phases = rng.uniform(0, 2 * np.pi, (nreads, 3))
    row = (amplitudes * np.sin(2 * np.pi * rows[:, None, None] / periods + phases[None])).sum(axis=2).T
    return channel, row


def check_cosmic_rays(fraction, multi_fraction):
    """Refuse a negative hit fraction or a multi-hit fraction outside 0..1."""
    if not fraction >= 0:
        raise InputError(f"the cosmic-ray fraction must be >= 0 (hit pixels per pixel), got {fraction}")
    if not 0 <= multi_fraction <= 1:
        raise InputError(f"the multi-hit fraction must be within 0..1 (of the hit pixels), got {multi_fraction}")


def _cosmic_rays(detector, first_read, last_read, seed, fraction, multi_fraction=0.0):
    """Hits: science-pixel (y, x), the read index they first appear in, and amplitude (DN).

    A Poisson number of pixels (``fraction`` of the science pixels on average) is hit at
    uniformly random reads after the first sampled one; ``multi_fraction`` of them get one
    or two more hits (equally likely), each at its own random read.
    """
    rng = _rng(seed, _COSMICS)
    nsci = detector.size - 2 * detector.border
    nhits = rng.poisson(fraction * nsci * nsci) if last_read > first_read else 0
    y = rng.integers(0, nsci, nhits)
    x = rng.integers(0, nsci, nhits)
    # only after the first sampled read: a hit before it is indistinguishable from bias
    read = rng.integers(first_read + 1, last_read + 1, nhits) if nhits else np.zeros(0, int)
    amplitude = 10 ** rng.uniform(np.log10(20.0), np.log10(5000.0), nhits)
    if multi_fraction > 0 and nhits:
        multi = rng.uniform(size=nhits) < multi_fraction
        extra = np.repeat(np.flatnonzero(multi), rng.integers(1, 3, multi.sum()))
        y = np.concatenate([y, y[extra]])
        x = np.concatenate([x, x[extra]])
        read = np.concatenate([read, rng.integers(first_read + 1, last_read + 1, extra.size)])
        amplitude = np.concatenate([amplitude, 10 ** rng.uniform(np.log10(20.0), np.log10(5000.0), extra.size)])
    b = detector.border
    alive = ~detector.dead[y + b, x + b]
    return y[alive], x[alive], read[alive], amplitude[alive].astype(np.float32)


def simulate_exposure(
    detector,
    flux,
    *,
    read_pattern=None,
    nresultants=6,
    frame_time=FRAME_TIME,
    seed=0,
    fully_saturated=False,
    cosmic_ray_fraction=0.02,
    multi_hit_fraction=0.0,
    bias=True,
    noise=True,
    progress=None,
    block_rows=256,
    read_signal=None,
):
    """Generate the raw resultants read by read.

    Parameters
    ----------
    detector : Detector
    flux : float32 (N-2b, N-2b) sky flux in DN/s on the science pixels.
    read_pattern : read indices per resultant; default ``default_read_pattern(nresultants)``.
    fully_saturated : every pixel (border and dead pixels included) reads at full well.
    cosmic_ray_fraction : expected hit pixels per science pixel (hits at random reads).
    multi_hit_fraction : fraction of the hit pixels hit once or twice more.
    bias : include pedestal and drifts (switching it off leaves all other draws unchanged).
    noise : Poisson and read noise; without it each frame adds its expected counts.
    read_signal : optional ``f(k, read)`` that changes read ``k`` (float32 (N, N) DN, bias
        included) in place before it is averaged into its resultant: readout effects that a
        calibration step removes. It draws no random numbers, so the other draws stay the same.

    Returns an :class:`Exposure` whose ``truth`` holds, on the science pixels: ``slope``
    (flux*flat + dark, DN/s), ``flux``, ``dark``, ``flat``, ``jumps`` (hits per pixel),
    ``saturated`` (measured counts at the last read reach the saturation level),
    ``saturated_read`` (the first read whose measured counts reach it, 0 if none);
    ``cosmic_rays``: one entry per hit, ``y``, ``x`` (science pixels), ``read`` (first read
    holding it) and ``amplitude`` (DN); and the bias actually added to each resultant:
    ``bias_channel`` (nresultants, nchannels) and ``bias_row`` (nresultants, N).
    """
    progress = progress or (lambda message: None)
    pattern = check_read_pattern(read_pattern or default_read_pattern(nresultants))
    n, b = detector.size, detector.border
    sci = detector.science
    if flux.shape != (n - 2 * b, n - 2 * b):
        raise ValueError(f"flux shape {flux.shape} does not match the science area of a {n}x{n} detector")
    last_read = pattern[-1][-1]
    resultant_of = {k: i for i, reads in enumerate(pattern) for k in reads}

    slope = (flux * detector.flat[sci] + detector.dark[sci]).astype(np.float32)
    # expected electrons per frame
    lam = slope * detector.gain[sci] * np.float32(frame_time)
    inv_gain = (1.0 / detector.gain[sci]).astype(np.float32)
    respond = ~detector.dead

    channel_bias, row_bias = _bias_per_read(detector, last_read, frame_time, seed)
    if not bias:
        channel_bias[:] = 0.0
        row_bias[:] = 0.0
    column_channel = detector.channel_of_column()
    check_cosmic_rays(cosmic_ray_fraction, multi_hit_fraction)
    cr_y, cr_x, cr_read, cr_amp = _cosmic_rays(detector, pattern[0][0], last_read, seed, cosmic_ray_fraction,
                                               multi_hit_fraction)
    if fully_saturated:
        cr_y = cr_x = cr_read = np.zeros(0, int)
        cr_amp = np.zeros(0, np.float32)
    jumps = np.zeros(flux.shape, np.int16)
    np.add.at(jumps, (cr_y, cr_x), 1)

    level = detector.saturation_level[sci]
    # linear counts at which the measured counts reach the saturation level (Newton)
    a, b_ = detector.nl_a[sci], detector.nl_b[sci]
    well = detector.full_well[sci]
    c_sat = level.astype(np.float32)
    for _ in range(8):
        u = c_sat / well
        c_sat = c_sat - (c_sat * (1 - a * u - b_ * u * u) - level) / (1 - 2 * a * u - 3 * b_ * u * u)
    del u, a, b_, well
    saturated_read = np.zeros(flux.shape, np.int16)

    photons = _rng(seed, _PHOTONS)
    reads = _rng(seed, _READS)
    counts = np.zeros(flux.shape, np.float32)
    acc = np.zeros((n, n), np.float32)
    z = np.empty((n, n), np.float32)
    read = np.empty((n, n), np.float32) if read_signal is not None else None
    raw = np.empty((len(pattern), n, n), np.uint16)
    bias_channel = np.zeros((len(pattern), detector.nchannels))
    bias_row = np.zeros((len(pattern), n))

    for k in range(1, last_read + 1):
        if not fully_saturated:
            # Poisson noise in electrons, accumulated frame by frame, in row blocks
            for r0 in range(0, flux.shape[0], block_rows):
                r1 = min(r0 + block_rows, flux.shape[0])
                electrons = photons.poisson(lam[r0:r1]).astype(np.float32) if noise else lam[r0:r1]
                counts[r0:r1] += electrons * inv_gain[r0:r1]
            hit = cr_read == k
            if hit.any():
                np.add.at(counts, (cr_y[hit], cr_x[hit]), cr_amp[hit])
            saturated_read[(saturated_read == 0) & (counts >= c_sat)] = k
        i = resultant_of.get(k)
        if i is None:
            continue  # a read that is not downlinked
        if noise:
            reads.standard_normal(out=z, dtype=np.float32)
        else:
            z[:] = 0.0
        if read_signal is not None:
            read[:] = 0.0
        on_threads(
            _add_read, acc.shape[0], acc if read_signal is None else read, counts, detector.nl_a, detector.nl_b,
            detector.full_well, detector.readnoise, z, channel_bias[k - 1][column_channel].astype(np.float32),
            row_bias[k - 1].astype(np.float32), b, fully_saturated, respond,
        )
        if read_signal is not None:
            read_signal(k, read)
            acc += read
        bias_channel[i] += channel_bias[k - 1]
        bias_row[i] += row_bias[k - 1]
        if k == pattern[i][-1]:
            nreads = len(pattern[i])
            np.rint(acc / np.float32(nreads), out=acc)
            np.clip(acc, 0, ADC_MAX, out=acc)
            raw[i] = acc
            acc[:] = 0.0
            bias_channel[i] /= nreads
            bias_row[i] /= nreads
            progress(f"resultant {i + 1}/{len(pattern)} (reads {pattern[i][0]}-{pattern[i][-1]})")

    if fully_saturated:
        saturated = np.ones(flux.shape, bool)
        saturated_read[:] = 1
    else:
        measured = nonlinear(counts, detector.nl_a[sci], detector.nl_b[sci], detector.full_well[sci])
        saturated = (measured >= level) & respond[sci]
    slope[detector.dead[sci]] = 0.0
    truth = {
        "slope": slope,
        "flux": flux.astype(np.float32),
        "dark": detector.dark[sci].copy(),
        "flat": detector.flat[sci].copy(),
        "jumps": jumps,
        "saturated": saturated,
        # the same event as ``saturated`` (a pixel at the threshold to rounding gets the last read)
        "saturated_read": np.where(saturated, np.where(saturated_read > 0, saturated_read, last_read), 0
                                   ).astype(np.int16),
        "cosmic_rays": {"y": cr_y.astype(np.int32), "x": cr_x.astype(np.int32),
                        "read": cr_read.astype(np.int32), "amplitude": cr_amp},
        "bias_channel": bias_channel,
        "bias_row": bias_row,
    }
    return Exposure(raw=raw, read_pattern=pattern, frame_time=float(frame_time), detector=detector, truth=truth)
