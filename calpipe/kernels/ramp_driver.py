"""The chunk driver shared by the ramp fitters: reading, scheduling and writing pixels.

Both fitters (:mod:`calpipe.kernels.ramp_optimal`, :mod:`calpipe.kernels.ramp_likely`)
fit a block of rows the same way: tasks of ``chunk`` pixels of a row are shared by
``nworkers`` threads (:func:`fit_share` is one thread's share, run on every thread by
:func:`calpipe.kernels.threads.on_threads`); each task reads its pixels
(:func:`load_chunk`), fits those with every resultant usable a chunk at a time with the
pixel index innermost (vectorised), writes them (:func:`store_chunk`), and refits one by
one (:func:`load_pixel`, :func:`store_pixel`) the pixels the chunk path marks ``slow``.
Only the two fits differ; this module holds everything else, once.

Dispatch happens at compile time, on the type of the ``consts`` argument: each fitter
passes its own ``NamedTuple`` of read-pattern constants and jump settings and registers,
with ``numba.extending.overload``, what :func:`scratch`, :func:`fit_chunk` and
:func:`fit_one` do for that type. Numba compiles :func:`fit_share` once per fitter and
calls the fitter's functions directly: no function is passed as an argument or closed
over, so the compiled kernels can be cached on disk.

The functions here are not cached themselves: each fitter's ``fit_block`` is the cached
entry point, in the fitter's own file, so that editing a fitter invalidates its cached
kernel (Numba's cache checks only the file of the function it caches). After editing
this file, clear the Numba cache of both fitters.
"""

import math

import numpy as np
from numba import njit

from calpipe import dqflags

_DO_NOT_USE = dqflags.DO_NOT_USE
_SATURATED = dqflags.SATURATED
_JUMP_DET = dqflags.JUMP_DET
_NO_GAIN_VALUE = dqflags.NO_GAIN_VALUE
_UNUSABLE = dqflags.DO_NOT_USE | dqflags.SATURATED
UNRELIABLE = dqflags.UNRELIABLE_SLOPE | dqflags.DO_NOT_USE
"""Pixel flags where no trustworthy fit is left after the jump search."""

NO_REFCOUNT = {"error_model": "numpy", "_nrt": False}
"""Numba options of the fits' functions that allocate nothing (their chunk fit and
per-pixel fit): compiled without Numba's reference counting. With it, every array bound
to a name or passed to an inlined helper costs an atomic increment and decrement, which
made the per-pixel fit of "optimal" 3.7 times slower (878 against 237 ns per pixel with
jumps). ``_nrt`` is a private Numba option: ``tests/kernels/test_ramp_driver.py`` fails
when it stops removing the reference counting.

The same options serve the fits' larger helpers, compiled on their own rather than
inlined (``inline="always"``): Numba inlines by copying a function's IR into every caller
and typing it again there, which made the per-pixel fits, called from the driver, the
round tables and each other, the bulk of the compile time (both fits and their tables:
31.3 s of CPU against 22.6 s, ``benchmarks/kernel_compile.py``). The hot loops' small
helpers stay inlined; the fits' speed is unchanged (``benchmarks/ramp_fit.py``)."""


# What each fitter provides for its ``consts`` type (``numba.extending.overload``). Plain
# Python has no use for them: they exist to be overloaded.


def scratch(consts, n, chunk):
    """A tuple of the fitter's scratch arrays for ``n`` resultants and ``chunk`` pixels."""
    raise NotImplementedError("compiled only, through a fitter's overload")


def fit_chunk(consts, work, w, r, rvar, slow, jflag, out_slope, out_vr, out_vp):
    """Fit the first ``w`` pixels of the chunk ``r`` (n, chunk) in electrons as if every
    resultant were usable; mark ``slow`` the pixels the fitter must refit one by one."""
    raise NotImplementedError("compiled only, through a fitter's overload")


def fit_one(consts, work, r, usable, read_var, jflag):
    """Fit one pixel: (slope, var_rnoise, var_poisson, njumps, unreliable), electrons."""
    raise NotImplementedError("compiled only, through a fitter's overload")


def is_constants(numba_type, constants_class):
    """Whether ``numba_type`` is the Numba type of a ``constants_class`` NamedTuple (for an
    overload's applicability test)."""
    return getattr(numba_type, "instance_class", None) is constants_class


@njit(error_model="numpy")
def median(buf, k):
    """Median of ``buf[:k]`` (k >= 1), which it sorts in place (insertion sort: ``k`` is
    a handful of resultant differences)."""
    for t in range(1, k):
        v = buf[t]
        j = t
        while j > 0 and buf[j - 1] > v:
            buf[j] = buf[j - 1]
            j -= 1
        buf[j] = v
    if k % 2 == 1:
        return buf[k // 2]
    return 0.5 * (buf[k // 2 - 1] + buf[k // 2])


@njit(inline="always", error_model="numpy")
def load_pixel(resultants, row0, col0, groupdq, read_noise, gain, row, col, r, usable):
    """Read one pixel into scratch: resultants in electrons and the usable mask.

    Returns (pixel dq so far, number of usable resultants, gain, read noise in e).
    A pixel with unusable gain or read noise gets NO_GAIN_VALUE | DO_NOT_USE and
    zero usable resultants.
    """
    n = r.shape[0]
    dq = 0
    nusable = 0
    g = np.float64(gain[row, col])
    for k in range(n):
        flags = groupdq[k, row, col]
        if flags & _SATURATED:
            dq |= _SATURATED
        v = np.float64(resultants[k, row0 + row, col0 + col])
        ok = (flags & _UNUSABLE) == 0 and math.isfinite(v)
        usable[k] = ok
        r[k] = v * g
        if ok:
            nusable += 1
    rn = np.float64(read_noise[row, col])
    if not (g > 0.0 and math.isfinite(g) and rn > 0.0 and math.isfinite(rn)):
        dq |= _NO_GAIN_VALUE | _DO_NOT_USE
        nusable = 0
    elif nusable == 0:
        dq |= _DO_NOT_USE
    return dq, nusable, g, rn * g


@njit(inline="always", error_model="numpy")
def store_pixel(row, col, slope, var_r, var_p, dq, nj, g, jflag, want_jumps,
                out_slope, out_vp, out_vr, out_err, out_dq, out_jumps):
    """Write one pixel's results, converting electrons back to DN."""
    if nj > 0:
        dq |= _JUMP_DET
        if want_jumps:
            for k in range(jflag.shape[0]):
                if jflag[k]:
                    out_jumps[k, row, col] = _JUMP_DET
    if g > 0.0:
        slope /= g
        var_r /= g * g
        var_p /= g * g
    out_slope[row, col] = slope
    out_vr[row, col] = var_r
    out_vp[row, col] = var_p
    out_err[row, col] = math.sqrt(var_r + var_p)
    out_dq[row, col] = dq


@njit(inline="always", error_model="numpy")
def load_chunk(resultants, row0, col0, groupdq, read_noise, gain, row, c0, w, r, rvar, gw, slow, sat):
    """Read ``w`` pixels of one row from column ``c0`` into scratch, column innermost.

    ``r`` (n, chunk): resultants in electrons; ``rvar``: read variance (e^2); ``gw``:
    gain; ``sat``: SATURATED if any resultant is; ``slow``: True where the pixel needs
    the general per-pixel fit (an unusable resultant, or unusable gain or read noise).
    Branch-free so that the loops vectorise.
    """
    n = r.shape[0]
    # The chunk's pixels as slices indexed from 0: Numba then knows that no index is negative
    # and loads them as vectors (an index it must wrap when negative is taken one element at
    # a time, which made these loads gathers).
    gains = gain[row, c0:c0 + w]
    noises = read_noise[row, c0:c0 + w]
    for j in range(w):
        g = np.float64(gains[j])
        rn = np.float64(noises[j])
        rne = rn * g
        gw[j] = g
        rvar[j] = rne * rne
        good = (g > 0.0) & math.isfinite(g) & (rn > 0.0) & math.isfinite(rn)
        slow[j] = not good
        sat[j] = 0
    for k in range(n):
        flag_row = groupdq[k, row, c0:c0 + w]
        value_row = resultants[k, row0 + row, col0 + c0:col0 + c0 + w]
        for j in range(w):
            flags = flag_row[j]
            v = np.float64(value_row[j])
            sat[j] |= flags & _SATURATED
            slow[j] = slow[j] | ((flags & _UNUSABLE) != 0) | (not math.isfinite(v))
            r[k, j] = v * gw[j]


@njit(inline="always", error_model="numpy")
def store_chunk(row, c0, w, sat, gw, slope, var_r, var_p,
                out_slope, out_vp, out_vr, out_err, out_dq):
    """Write a chunk's fast-path results in DN, for every pixel (branch-free, so it
    vectorises); the pixels fitted one by one are overwritten afterwards."""
    slopes = out_slope[row, c0:c0 + w]
    vrs = out_vr[row, c0:c0 + w]
    vps = out_vp[row, c0:c0 + w]
    errs = out_err[row, c0:c0 + w]
    dqs = out_dq[row, c0:c0 + w]
    for j in range(w):
        g = gw[j]
        s = slope[j] / g
        vr = var_r[j] / (g * g)
        vp = var_p[j] / (g * g)
        slopes[j] = s
        vrs[j] = vr
        vps[j] = vp
        errs[j] = math.sqrt(vr + vp)
        dqs[j] = sat[j]


@njit(error_model="numpy")
def fit_share(worker, nworkers, resultants, row0, col0, groupdq, read_noise, gain, consts, want_jumps, chunk,
              out_slope, out_vp, out_vr, out_err, out_dq, out_jumps):
    """Fit the tasks ``worker``, ``worker + nworkers``... of a block of rows with the fitter
    ``consts`` belongs to; outputs in DN/s and (DN/s)^2.

    ``resultants`` in DN: a whole C-ordered cube, of which the block is rows ``row0`` to
    ``row0 + rows`` and columns ``col0`` to ``col0 + nx`` (passing the cube, not a slice of
    it, keeps one array type and so one compiled kernel for every image size, border or
    none); ``groupdq`` uint8 (n, rows, nx), ``read_noise`` and ``gain`` (rows, nx): the
    block's rows. Outputs (rows, nx) are written in place, ``out_jumps`` (n, rows, nx) only
    when ``want_jumps``.

    The threads are Python's, each running this serial function with the GIL released,
    not Numba's parallel loop: that loop compiled each fit in about 1.5 times the time
    (``"likely"``: 18.6 s against 12.6 s, of which LLVM 12.3 s against 5.2 s) and fitted
    3-8% faster on two threads (no faster on one).
    """
    n, rows, nx = groupdq.shape
    nchunks = (nx + chunk - 1) // chunk
    ntasks = rows * nchunks
    r = np.empty((n, chunk))
    rvar = np.empty(chunk)
    gw = np.empty(chunk)
    slow = np.empty(chunk, dtype=np.bool_)
    sat = np.empty(chunk, dtype=np.uint32)
    f_slope = np.empty(chunk)
    f_vr = np.empty(chunk)
    f_vp = np.empty(chunk)
    px = np.empty(n)
    usable = np.empty(n, dtype=np.bool_)
    jflag = np.zeros(n, dtype=np.uint8)
    work = scratch(consts, n, chunk)
    for task in range(worker, ntasks, nworkers):
        row = task // nchunks
        c0 = (task % nchunks) * chunk
        w = min(chunk, nx - c0)
        load_chunk(resultants, row0, col0, groupdq, read_noise, gain, row, c0, w, r, rvar, gw, slow, sat)
        if n >= 2:
            fit_chunk(consts, work, w, r, rvar, slow, jflag, f_slope, f_vr, f_vp)
            store_chunk(row, c0, w, sat, gw, f_slope, f_vr, f_vp,
                        out_slope, out_vp, out_vr, out_err, out_dq)
        else:
            for j in range(w):
                slow[j] = True
        # The rest, one pixel at a time.
        for j in range(w):
            if not slow[j]:
                continue
            col = c0 + j
            dq, nusable, g, rn = load_pixel(resultants, row0, col0, groupdq, read_noise, gain,
                                            row, col, px, usable)
            slope = 0.0
            var_r = 0.0
            var_p = 0.0
            nj = 0
            if nusable > 0:
                jflag[:] = 0
                slope, var_r, var_p, nj, bad = fit_one(consts, work, px, usable, rn * rn, jflag)
                if bad:
                    dq |= UNRELIABLE
            store_pixel(row, col, slope, var_r, var_p, dq, nj, g, jflag, want_jumps,
                        out_slope, out_vp, out_vr, out_err, out_dq, out_jumps)
