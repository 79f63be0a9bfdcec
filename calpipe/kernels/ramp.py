"""Up-the-ramp slope fitting with jump detection, for any read pattern.

Conventions
-----------
- ``read_pattern``: one list of read indices (ints >= 1) per resultant, e.g.
  ``[[1], [2, 3], [4, 5, 6, 7], [8]]``; read k happens ``k * frame_time`` seconds
  after reset and a resultant is the mean of its reads. Evenly spaced JWST groups are
  the special case of equal-size, evenly spaced lists.
- ``resultants``: real array (n, ny, nx) in DN, reference-pixel corrected and
  linearised, counts starting near zero at reset. Views and memory maps are read a
  block of rows at a time, never copied whole.
- ``groupdq``: uint8 (n, ny, nx). A resultant is usable unless it has DO_NOT_USE or
  SATURATED set or is not finite. Other group flags do not change the fit.
- ``read_noise`` (DN per single read) and ``gain`` (e/DN): (ny, nx). The noise model
  is evaluated in electrons; outputs are converted back to DN/s and (DN/s)^2.

Output rules (per pixel)
------------------------
- ``slope`` (DN/s), ``var_poisson`` and ``var_rnoise`` ((DN/s)^2),
  ``err = sqrt(var_poisson + var_rnoise)``, all float32; ``dq`` uint32.
- The Poisson variance uses the fitted slope clipped at zero: zero or negative flux
  gives zero Poisson variance.
- ``dq`` gets SATURATED if any resultant is SATURATED, JUMP_DET if a jump was found.
- No usable resultant: DO_NOT_USE; slope, variances and err are 0.
- Gain or read noise NaN or <= 0: NO_GAIN_VALUE | DO_NOT_USE; slope, variances and
  err are 0.
- One usable resultant (or none of the fitted pieces has two resultants): the slope is
  ``R / tbar`` of the first usable resultant (counts start at 0 at reset), with
  ``var_rnoise = s^2 / (N tbar^2)`` and ``var_poisson = slope tau / tbar^2``.
- No trustworthy fit left after the jump search (a difference or piece of the ramp
  far below the fit that no cosmic ray explains; for ``"optimal"`` also no piece of two
  resultants left after a jump): UNRELIABLE_SLOPE | DO_NOT_USE, with the slope and
  variances of the fit left.
- ``jumps`` (when asked): uint8 (n, ny, nx) with JUMP_DET on the flagged resultants:
  the later resultant of each removed difference for ``"likely"``; for ``"optimal"`` the
  resultants dropped around each jump, the first resultant after it, and those of any
  piece dropped by the piece test.

Algorithms
----------
``"likely"`` (default): generalised least squares on resultant differences with their
tridiagonal covariance, jumps by chi-square drop (Brandt 2024); see
:mod:`calpipe.kernels.ramp_likely`. It needs at least 4 resultants: with fewer,
:func:`fit_ramps` uses ``"optimal"`` instead. It is the default because, being the
generalised least-squares estimate, it has the smallest slope scatter (up to 2% below
the optimal weighting on simulated ramps, whose exponent table is a compromise), its
normalised residuals are unbiased, it finds more of the moderate jumps, and it costs
about 1.5-2 times the optimal fit's time, still many times faster than other
implementations of either fit (figures in docs/ramp_fitting.md).

``"optimal"``: Casertano et al. (2022) optimal weighting per segment with the
Sharma & Casertano jump search; see :mod:`calpipe.kernels.ramp_optimal`.

``jump_threshold``: for ``"optimal"`` the threshold at 1 e/s in sigma (default 5.5;
it falls by 1/3 per decade of count rate up to 1e4 e/s); for ``"likely"`` the
sigma-equivalent of the chi-square drop (default 4.5).
"""

from dataclasses import dataclass

import numpy as np

from calpipe.kernels import ramp_likely, ramp_optimal
from calpipe.kernels.threads import on_threads

ALGORITHMS = ("likely", "optimal")
CHUNK = 256
"""Pixels of a row fitted together by the kernels' vectorised path."""
DEFAULT_ALGORITHM = "likely"


@dataclass
class RampFit:
    """Result of :func:`fit_ramps`; arrays (ny, nx) unless noted."""

    slope: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    jumps: np.ndarray | None
    """uint8 (n, ny, nx) JUMP_DET flags per resultant, or None when not asked for."""
    algorithm: str = DEFAULT_ALGORITHM
    """The algorithm that fitted the pixels: ``"optimal"`` where ``"likely"`` was asked
    for with fewer than 4 resultants."""


def resultant_times(read_pattern, frame_time):
    """tbar, tau, nreads per resultant (float64, float64, int32).

    ``tbar_i = t_f mean(k)``; ``tau_i = (t_f / N^2) sum_j (2N - 2j + 1) k_j`` (j from 1),
    so that a resultant's variance is ``s^2 / N + f tau`` and the covariance of
    resultants i < j is ``f tbar_i``.
    """
    frame_time = float(frame_time)
    if not (frame_time > 0.0 and np.isfinite(frame_time)):
        raise ValueError(f"frame_time must be a positive number, got {frame_time!r}")
    if len(read_pattern) == 0:
        raise ValueError("read_pattern is empty: expected one list of read indices per resultant")
    n = len(read_pattern)
    tbar = np.empty(n)
    tau = np.empty(n)
    nreads = np.empty(n, dtype=np.int32)
    last = 0
    for i, reads in enumerate(read_pattern):
        k = np.asarray(reads)
        if k.ndim != 1 or k.size == 0:
            raise ValueError(f"read_pattern[{i}] must be a non-empty list of read indices, got {reads!r}")
        if not np.issubdtype(k.dtype, np.integer) and not np.all(k == np.round(k)):
            raise ValueError(f"read_pattern[{i}] holds non-integer read indices: {reads!r}")
        k = k.astype(np.int64)
        if k[0] <= last or np.any(np.diff(k) <= 0):
            raise ValueError(
                f"read_pattern[{i}] = {reads!r}: read indices must be >= 1 and strictly "
                "increasing through the pattern")
        last = int(k[-1])
        nr = k.size
        j = np.arange(1, nr + 1)
        tbar[i] = frame_time * k.mean()
        tau[i] = frame_time / nr**2 * np.sum((2 * nr - 2 * j + 1) * k)
        nreads[i] = nr
    return tbar, tau, nreads


def fit_ramps(resultants, groupdq, read_noise, gain, read_pattern, frame_time, *,
              algorithm=DEFAULT_ALGORITHM, detect_jumps=True, jump_threshold=None,
              block_rows=256, return_jumps=False, rows_done=None) -> RampFit:
    """Fit the slope of every pixel's ramp; see the module docstring for the rules.

    Parameters
    ----------
    resultants : array (n, ny, nx), DN; read as float32 (the ramp product's type)
    groupdq : uint8 array (n, ny, nx)
    read_noise, gain : arrays (ny, nx): DN per read, electrons per DN
    read_pattern : list of lists of read indices, one per resultant
    frame_time : float, seconds between reads
    algorithm : "likely" (default; needs >= 4 resultants, else "optimal" is used) or
        "optimal"
    detect_jumps : bool
    jump_threshold : float or None: None gives the algorithm's default (5.5 for
        "optimal", the threshold at 1 e/s; 4.5 sigma-equivalent for "likely")
    block_rows : rows processed per kernel call (bounds the scratch memory)
    return_jumps : also return the per-resultant JUMP_DET flags
    rows_done : None, or ``rows_done(r0, r1)`` called once rows ``r0:r1`` are fitted and
        never read again (a caller that owns the cube may release their memory)
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if np.ndim(resultants) != 3:
        raise ValueError(f"resultants must be 3-D (nresultants, ny, nx), got shape {np.shape(resultants)}")
    n, ny, nx = resultants.shape
    if tuple(groupdq.shape) != (n, ny, nx):
        raise ValueError(f"groupdq shape {groupdq.shape} does not match resultants {resultants.shape}")
    for name, arr in (("read_noise", read_noise), ("gain", gain)):
        if tuple(np.shape(arr)) != (ny, nx):
            raise ValueError(f"{name} shape {np.shape(arr)} does not match the image shape {(ny, nx)}")
    if len(read_pattern) != n:
        raise ValueError(f"read_pattern has {len(read_pattern)} resultants, the data {n}")
    block_rows = int(block_rows)
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    tbar, tau, nreads = resultant_times(read_pattern, frame_time)
    if algorithm == "likely" and n < ramp_likely.MIN_RESULTANTS:
        algorithm = "optimal"

    slope = np.zeros((ny, nx), np.float32)
    var_p = np.zeros((ny, nx), np.float32)
    var_r = np.zeros((ny, nx), np.float32)
    err = np.zeros((ny, nx), np.float32)
    dq = np.zeros((ny, nx), np.uint32)
    jumps = np.zeros((n, ny, nx), np.uint8) if return_jumps else None
    no_jumps = np.zeros((n, 1, 1), np.uint8)

    if algorithm == "optimal":
        intercept = ramp_optimal.DEFAULT_INTERCEPT if jump_threshold is None else float(jump_threshold)
        consts = ramp_optimal.Constants(*ramp_optimal.prepare(tbar, tau, nreads), bool(detect_jumps),
                                        intercept)
        kernel = ramp_optimal.fit_block
    else:
        sigma = ramp_likely.DEFAULT_SIGMA if jump_threshold is None else float(jump_threshold)
        consts = ramp_likely.Constants(*ramp_likely.prepare(tbar, tau, nreads), bool(detect_jumps),
                                       *ramp_likely.chisq_thresholds(sigma))
        kernel = ramp_likely.fit_block

    # The kernels read a writable C-ordered float32 cube in place, whole (the resultants, or
    # the cube they are a window of), so that one compiled kernel serves every image size;
    # other cubes (float64 included) are converted to float32 a block at a time. The small
    # per-block arrays are made contiguous.
    whole = _whole_cube(np.asarray(resultants))
    for r0 in range(0, ny, block_rows):
        r1 = min(ny, r0 + block_rows)
        if whole is not None:
            res, row0, col0 = whole[0], whole[1] + r0, whole[2]
        else:
            res, row0, col0 = np.ascontiguousarray(resultants[:, r0:r1], np.float32), 0, 0
        gdq = np.ascontiguousarray(groupdq[:, r0:r1], dtype=np.uint8)
        rn = np.ascontiguousarray(read_noise[r0:r1], dtype=np.float32)
        g = np.ascontiguousarray(gain[r0:r1], dtype=np.float32)
        jb = np.zeros((n, r1 - r0, nx), np.uint8) if return_jumps else no_jumps
        # Tasks of CHUNK pixels of a row, shared by the threads.
        on_threads(kernel, (r1 - r0) * ((nx + CHUNK - 1) // CHUNK), res, row0, col0, gdq, rn, g, consts,
                   bool(return_jumps), CHUNK, slope[r0:r1], var_p[r0:r1], var_r[r0:r1], err[r0:r1], dq[r0:r1], jb)
        if return_jumps:
            jumps[:, r0:r1] = jb
        if rows_done is not None:
            rows_done(r0, r1)
    return RampFit(slope=slope, var_poisson=var_p, var_rnoise=var_r, err=err, dq=dq, jumps=jumps,
                   algorithm=algorithm)


def _whole_cube(resultants):
    """``(cube, row0, col0)`` such that ``resultants`` is ``cube[:, row0:, col0:]`` cut to its
    shape, ``cube`` a writable C-ordered float32 array (the resultants themselves, or the
    cube of which they are a window, as the ramp_fit step's science pixels are); None for
    any other array."""
    dtype = resultants.dtype
    if dtype != np.dtype(np.float32) or not resultants.flags.writeable:
        return None
    if resultants.flags.c_contiguous:
        return resultants, 0, 0
    base = resultants.base
    if not isinstance(base, np.ndarray) or not base.flags.c_contiguous or not base.flags.writeable:
        return None
    n, ny, nx = resultants.shape
    plane, row, item = resultants.strides
    size = dtype.itemsize
    if item != size or row <= 0 or row % size or plane <= 0 or plane % row:
        return None
    height, width = plane // row, row // size
    row0, rest = divmod(resultants.ctypes.data - base.ctypes.data, row)
    col0 = rest // size
    if row0 < 0 or rest % size or row0 + ny > height or col0 + nx > width or n * plane > base.nbytes:
        return None
    return np.ndarray((n, height, width), dtype, buffer=base), row0, col0
