"""Classical non-linearity correction: a per-pixel polynomial from measured to linear counts.

Counts are DN with the bias removed. A resultant is the mean of its reads, and the
polynomial is not linear, so the polynomial of the mean is not the mean of the corrected
reads: for a response that bends down (a correction that curves up) it falls short by
about half the correction's curvature times the spread of the counts over the reads. The
shortfall grows along the ramp, with the count rate and with the length of the resultant,
and biases the slopes of bright pixels low.

Each multi-read resultant is therefore corrected through the reads it averages, in one
pass:

1. every resultant is corrected as if it were one read, ``C_i = P(R_i)``;
2. from those, the linear counts per read ``r`` around resultant ``i`` (constant flux makes
   the linear ramp a straight line; see :func:`_ramp_slope`);
3. the measured counts of each read ``k_j`` of the resultant follow from that straight
   line through the response: with ``d = k_j - kbar``, ``s = r / P'(R)`` and the ramp's
   curvature ``kappa = -P''(R) s^2 / P'(R)`` (second order in ``d``),
   ``m_j = R + s d + kappa (d^2 - <d^2>) / 2``, whose mean is the resultant ``R``;
4. the corrected resultant is the mean of ``P(m_j)``.

Errors in ``r`` change the result only through the curvature terms, so one pass is enough.
"""

import numpy as np
from numba import njit

from calpipe import dqflags
from calpipe.kernels.threads import on_threads, read_only

_SATURATED = np.uint8(dqflags.SATURATED)
_UNUSABLE = np.uint8(dqflags.SATURATED | dqflags.DO_NOT_USE)
_NO_LIN_CORR = np.uint32(dqflags.NO_LIN_CORR)


def read_offsets(read_pattern):
    """Per resultant: mean read index (nres,), offsets of its reads from it (nres, most
    reads; zero-padded), number of reads (nres,) and mean squared offset (nres,)."""
    nreads = np.array([len(reads) for reads in read_pattern], dtype=np.int64)
    mean = np.array([np.mean(reads) for reads in read_pattern], dtype=np.float64)
    offsets = np.zeros((len(read_pattern), int(nreads.max())), dtype=np.float64)
    for i, reads in enumerate(read_pattern):
        offsets[i, : len(reads)] = np.asarray(reads, dtype=np.float64) - mean[i]
    spread = (offsets**2).sum(axis=1) / nreads
    return mean, offsets, nreads, spread


@njit(cache=True)
def _neighbour(usable, i, step):
    """The nearest usable resultant from ``i`` in direction ``step``, or -1."""
    j = i + step
    while 0 <= j < usable.shape[0]:
        if usable[j]:
            return j
        j += step
    return -1


@njit(cache=True, inline="always")
def _ramp_slope(c0, c1, c2, x0, x1, x2):
    """Linear counts per read from three points of a straight ramp: the slope through the
    outer two when both differences agree within 25 %, else the smaller difference (a
    cosmic ray adds charge, so it can only raise the difference it falls in)."""
    d1 = (c1 - c0) / (x1 - x0)
    d2 = (c2 - c1) / (x2 - x1)
    if abs(d2 - d1) > 0.25 * max(abs(d1), abs(d2)):
        return min(d1, d2)
    return (c2 - c0) / (x2 - x0)


@njit(cache=True)
def _search_slope(first, usable, mean_read, i):
    """:func:`_ramp_slope` around resultant ``i`` with the nearest usable resultants (``i``
    in the middle where it can be); the one difference when only two are usable; NaN when
    ``i`` has no usable neighbour."""
    prev = _neighbour(usable, i, -1)
    nxt = _neighbour(usable, i, 1)
    if prev >= 0 and nxt >= 0:
        p0, p1, p2 = prev, i, nxt
    elif nxt >= 0:
        p0, p1, p2 = i, nxt, _neighbour(usable, nxt, 1)
    elif prev >= 0:
        p0, p1, p2 = _neighbour(usable, prev, -1), prev, i
    else:
        return np.nan
    if p0 < 0 or p2 < 0:
        a, b = (p1, p2) if p0 < 0 else (p0, p1)
        return (first[b] - first[a]) / (mean_read[b] - mean_read[a])
    return _ramp_slope(first[p0], first[p1], first[p2], mean_read[p0], mean_read[p1], mean_read[p2])


@njit(nogil=True, cache=True)
def _correct(worker, nworkers, resultants, groupdq, coeffs, pixeldq, coeffs_dq, mean_read, offsets, nreads,
             spread, stencil):
    """Row by row; the inner loops run along x so that they vectorise."""
    nres, ny, nx = resultants.shape
    ncoeff = coeffs.shape[0]
    for y in range(worker, ny, nworkers):
        values = np.empty((nres, nx), dtype=np.float64)
        first = np.empty((nres, nx), dtype=np.float64)  # step 1: P(R)
        slope = np.full((nres, nx), np.nan)  # step 2: linear counts per read
        taylor = np.empty((ncoeff, nx), dtype=np.float64)
        total = np.empty(nx, dtype=np.float64)
        rise = np.empty(nx, dtype=np.float64)
        bend = np.empty(nx, dtype=np.float64)
        e = np.empty(nx, dtype=np.float64)
        value = np.empty(nx, dtype=np.float64)
        correct = np.empty(nx, dtype=np.bool_)
        clean = np.empty(nx, dtype=np.bool_)
        usable = np.empty(nres, dtype=np.bool_)
        for x in range(nx):
            pixeldq[y, x] |= coeffs_dq[y, x]
            ok = (coeffs_dq[y, x] & _NO_LIN_CORR) == 0
            allzero = True
            for k in range(ncoeff):
                c = coeffs[k, y, x]
                if np.isnan(c):
                    ok = False
                if c != 0:
                    allzero = False
            if allzero or not ok:
                pixeldq[y, x] |= _NO_LIN_CORR
            correct[x] = ok and not allzero
            clean[x] = nres >= 3
        for i in range(nres):
            for x in range(nx):
                values[i, x] = resultants[i, y, x]
                if (groupdq[i, y, x] & _UNUSABLE) or not np.isfinite(values[i, x]):
                    clean[x] = False
            for x in range(nx):
                first[i, x] = coeffs[ncoeff - 1, y, x]
            for k in range(ncoeff - 2, -1, -1):
                for x in range(nx):
                    first[i, x] = first[i, x] * values[i, x] + coeffs[k, y, x]
        # the ramp's slope: fixed stencils where every resultant is usable ...
        for i in range(nres):
            if nreads[i] == 1 or nres < 3:
                continue
            p0, p1, p2 = stencil[i, 0], stencil[i, 1], stencil[i, 2]
            x0, x1, x2 = mean_read[p0], mean_read[p1], mean_read[p2]
            for x in range(nx):
                slope[i, x] = _ramp_slope(first[p0, x], first[p1, x], first[p2, x], x0, x1, x2)
        # ... and a search for usable neighbours elsewhere
        for x in range(nx):
            if clean[x] or not correct[x]:
                continue
            for i in range(nres):
                usable[i] = (groupdq[i, y, x] & _UNUSABLE) == 0 and np.isfinite(values[i, x])
            for i in range(nres):
                slope[i, x] = np.nan
                if nreads[i] > 1:
                    slope[i, x] = _search_slope(first[:, x], usable, mean_read, i)
        for i in range(nres):
            if nreads[i] == 1:
                for x in range(nx):
                    total[x] = first[i, x]
            else:
                # Taylor coefficients of P at R (repeated synthetic division) ...
                for k in range(ncoeff):
                    for x in range(nx):
                        taylor[k, x] = coeffs[k, y, x]
                for p in range(ncoeff - 1):
                    for k in range(ncoeff - 2, p - 1, -1):
                        for x in range(nx):
                            taylor[k, x] += values[i, x] * taylor[k + 1, x]
                # ... the measured counts per read and the ramp's curvature there ...
                for x in range(nx):
                    total[x] = 0.0
                    gradient = taylor[1, x] if taylor[1, x] > 0 else 1.0
                    s = slope[i, x] / gradient
                    if not np.isfinite(s):
                        s = 0.0
                    rise[x] = s
                    bend[x] = taylor[2, x] * s * s / gradient
                # ... then P at each estimated read, averaged
                for j in range(nreads[i]):
                    d = offsets[i, j]
                    d2 = d * d - spread[i]
                    for x in range(nx):
                        e[x] = rise[x] * d - bend[x] * d2
                        value[x] = taylor[ncoeff - 1, x]
                    for k in range(ncoeff - 2, -1, -1):
                        for x in range(nx):
                            value[x] = value[x] * e[x] + taylor[k, x]
                    for x in range(nx):
                        total[x] += value[x]
                for x in range(nx):
                    total[x] /= nreads[i]
            for x in range(nx):
                if correct[x] and not (groupdq[i, y, x] & _SATURATED):
                    resultants[i, y, x] = total[x]


def _stencils(nres):
    """Per resultant, the three resultants whose differences give the ramp's slope there
    (``i`` in the middle where it can be); -1 when there are fewer than three."""
    out = np.full((nres, 3), -1, dtype=np.int64)
    if nres >= 3:
        for i in range(nres):
            mid = min(max(i, 1), nres - 2)
            out[i] = (mid - 1, mid, mid + 1)
    return out


def correct_linearity(resultants, groupdq, coeffs, pixeldq, read_pattern, coeffs_dq=None):
    """Map measured counts to linear counts, in place: ``c = sum_k coeffs[k] * m**k``.

    Parameters
    ----------
    resultants : float32 (nresultants, ny, nx), DN, bias removed.
    groupdq : uint8 (nresultants, ny, nx); SATURATED resultants are left alone, and
        SATURATED or DO_NOT_USE ones are not used to estimate the ramp's slope.
    coeffs : float (ncoeff, ny, nx), lowest power first.
    pixeldq : uint32 (ny, nx), updated in place: ``coeffs_dq`` is propagated, and pixels
        with NaN or all-zero coefficients (or NO_LIN_CORR in ``coeffs_dq``) get
        NO_LIN_CORR and are not corrected.
    read_pattern : list of lists of read indices, one per resultant.
    coeffs_dq : uint32 (ny, nx) or None.

    A single-read resultant becomes the polynomial of its value; a multi-read one the mean
    of the polynomial over its reads as estimated on the ramp (module docstring). Without
    a usable neighbouring resultant the ramp is taken as flat over the resultant.
    """
    if resultants.ndim != 3 or groupdq.shape != resultants.shape:
        raise ValueError("resultants and groupdq must be 3-D arrays of the same shape")
    if coeffs.ndim != 3 or coeffs.shape[1:] != resultants.shape[1:]:
        raise ValueError(f"coeffs shape {coeffs.shape} does not match data {resultants.shape[1:]}")
    if pixeldq.shape != resultants.shape[1:]:
        raise ValueError("pixeldq must have the shape of one resultant")
    if len(read_pattern) != resultants.shape[0]:
        raise ValueError(f"read_pattern has {len(read_pattern)} resultants, data has {resultants.shape[0]}")
    if coeffs_dq is None:
        coeffs_dq = np.zeros(resultants.shape[1:], dtype=np.uint32)
    if coeffs.shape[0] < 3:  # the kernel reads the quadratic term
        coeffs = np.concatenate([coeffs, np.zeros((3 - coeffs.shape[0], *coeffs.shape[1:]), coeffs.dtype)])
    on_threads(_correct, resultants.shape[1], resultants, groupdq, read_only(coeffs), pixeldq,
               read_only(coeffs_dq.astype(np.uint32, copy=False)), *read_offsets(read_pattern),
               _stencils(resultants.shape[0]))


# ----------------------------------------------------------------------------- integral non-linearity
@njit(cache=True, inline="always")
def _table(value, row, inverse_spacing, counts):
    """``row`` interpolated linearly at ``counts`` over the increasing ``value`` (evenly spaced
    by ``1 / inverse_spacing`` when that is > 0); the end values beyond the table."""
    n = value.shape[0]
    if counts <= value[0]:
        return row[0]
    if counts >= value[n - 1]:
        return row[n - 1]
    if inverse_spacing > 0:
        position = (counts - value[0]) * inverse_spacing
        k = min(int(position), n - 2)
        w = position - k
    else:  # bisection: value[k] <= counts < value[k + 1]
        k, hi = 0, n - 1
        while hi - k > 1:
            mid = (k + hi) // 2
            if value[mid] <= counts:
                k = mid
            else:
                hi = mid
        w = (counts - value[k]) / (value[k + 1] - value[k])
    return row[k] + w * (row[k + 1] - row[k])


@njit(nogil=True, cache=True)
def _correct_inl(worker, nworkers, resultants, groupdq, value, correction, inverse_spacing, width, mean_read,
                 offsets, nreads):
    """Row by row, resultant by resultant, along x."""
    nres, ny, nx = resultants.shape
    for y in range(worker, ny, nworkers):
        original = np.empty((nres, nx), dtype=np.float64)
        for i in range(nres):
            for x in range(nx):
                original[i, x] = resultants[i, y, x]
        for i in range(nres):
            lo, hi = max(i - 1, 0), min(i + 1, nres - 1)
            for x in range(nx):
                counts = original[i, x]
                if groupdq[i, y, x] & _SATURATED or not np.isfinite(counts):
                    continue
                row = correction[x // width]
                if nreads[i] == 1:
                    resultants[i, y, x] += _table(value, row, inverse_spacing, counts)
                    continue
                rise = 0.0
                if hi > lo and not (groupdq[hi, y, x] & _SATURATED):
                    rise = (original[hi, x] - original[lo, x]) / (mean_read[hi] - mean_read[lo])
                total = 0.0
                for j in range(nreads[i]):
                    total += _table(value, row, inverse_spacing, counts + rise * offsets[i, j])
                resultants[i, y, x] += total / nreads[i]


def correct_integral_nonlinearity(resultants, groupdq, read_pattern, value, correction):
    """Correct the readout's integral non-linearity, in place: each read gains
    ``correction[channel](counts)``, interpolated in the table.

    Parameters
    ----------
    resultants : float32 (nresultants, ny, nx), DN, the counts the table was made for (raw,
        bias level in).
    groupdq : uint8 (nresultants, ny, nx); SATURATED resultants are left alone (and not used
        for the ramp's slope).
    read_pattern : list of lists of read indices, one per resultant.
    value : (nvalues,) increasing counts (DN) at which the corrections are tabulated.
    correction : float (nchannels, nvalues) DN; channel ``c`` covers columns
        ``c * nx / nchannels`` onwards.

    A resultant is the mean of its reads, so it gains the mean correction over them: each
    read's counts are estimated from the resultant and the slope of the ramp through its
    neighbours (measured counts per read), exact for single-read resultants.
    """
    nres, ny, nx = resultants.shape
    nchannels = correction.shape[0]
    if nx % nchannels:
        raise ValueError(f"{nx} columns do not split into {nchannels} channels")
    if correction.ndim != 2 or correction.shape[1] != np.shape(value)[0]:
        raise ValueError(f"correction shape {correction.shape} does not match {np.shape(value)[0]} values")
    if len(read_pattern) != nres:
        raise ValueError(f"read_pattern has {len(read_pattern)} resultants, data has {nres}")
    mean, offsets, nreads, _ = read_offsets(read_pattern)
    value = np.asarray(value, np.float64)
    steps = np.diff(value)
    even = steps.size and steps[0] > 0 and np.allclose(steps, steps[0], rtol=1e-12, atol=0)
    inverse_spacing = 1 / steps[0] if even else 0.0
    on_threads(_correct_inl, resultants.shape[1], resultants, groupdq, value, np.asarray(correction, np.float64),
               inverse_spacing, nx // nchannels, mean, offsets, nreads)
