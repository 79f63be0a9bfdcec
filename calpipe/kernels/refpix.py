"""Bias-drift correction from the reference-pixel border.

Reference pixels see no light, so what they read is bias: a pedestal and read-to-read
drifts per amplifier channel, plus a common-mode component that varies along the rows
(it is sampled in time as the rows are read out). Per resultant:

1. per channel, the clipped mean of the top and bottom reference rows in that channel's
   columns is the channel offset (it includes the common mode's mean over those rows);
2. the left and right reference columns, less the offsets of their own (first and last)
   channels, give one value per row: the common mode relative to that mean; a local
   straight-line fit over a few neighbouring rows smooths their read noise (exact for a
   linear trend, also at the array edges) and is the row offset;
3. both offsets are subtracted from every pixel of the resultant.

Bad reference pixels are rejected by clipping at five robust (MAD) sigmas.

The estimates carry the reference pixels' read noise. A resultant of ``N`` reads has
reference pixels with variance ``sigma^2 / N``, so the subtracted bias adds to every
pixel a variance ``v / N`` with ``v`` fixed per pixel: exactly like extra read noise,
independent between resultants. :func:`refpix_variance` gives ``v`` (DN^2 per read) as
a per-channel plus a per-row term:

- channel term: the channel's offset (a mean of ``2 border width`` reference pixels) less
  half of each of the first and last channels' offsets (the row offsets are referenced
  to them, so their noise reaches every pixel of the detector);
- row term: the side columns' mean over ``2 border`` pixels per row, smoothed by the local
  line fit (its leverage at that row).
"""

import numpy as np
from numba import njit

from calpipe.kernels.threads import on_row_blocks, on_threads


@njit(cache=True)
def _clipped_mean(values, nsigma):
    """Mean of values within nsigma robust sigmas (from the MAD) of the median."""
    med = np.median(values)
    mad = np.median(np.abs(values - med))
    sigma = 1.4826 * mad
    if sigma == 0.0:
        return med
    total = 0.0
    count = 0
    for v in values:
        if abs(v - med) <= nsigma * sigma:
            total += v
            count += 1
    return total / count


@njit(nogil=True, cache=True)
def _channel_offsets(worker, nworkers, resultants, border, offsets):
    """Per resultant and channel: clipped mean of the top and bottom reference rows, into
    ``offsets`` (nres, nchannels)."""
    nres, ny, nx = resultants.shape
    nchannels = offsets.shape[1]
    width = nx // nchannels
    for job in range(worker, nres * nchannels, nworkers):
        i = job // nchannels
        c = job % nchannels
        values = np.empty(2 * border * width, dtype=np.float64)
        n = 0
        for y in list(range(border)) + list(range(ny - border, ny)):
            for x in range(c * width, (c + 1) * width):
                v = resultants[i, y, x]
                if np.isfinite(v):  # a NaN reference pixel carries no bias information
                    values[n] = v
                    n += 1
        offsets[i, c] = _clipped_mean(values[:n], 5.0) if n else 0.0


@njit(nogil=True, cache=True)
def _row_offsets(worker, nworkers, resultants, offsets, border, smooth, rows):
    """Per resultant and row: the left/right reference columns less their channels'
    offsets, smoothed along the rows, into ``rows`` (nres, ny)."""
    nres, ny, nx = resultants.shape
    last = offsets.shape[1] - 1
    for i in range(worker, nres, nworkers):
        side = np.empty((ny, 2 * border), dtype=np.float64)
        for y in range(ny):
            for x in range(border):
                side[y, x] = resultants[i, y, x] - offsets[i, 0]
                side[y, border + x] = resultants[i, y, nx - border + x] - offsets[i, last]
        # one robust noise level for the resultant, so that a bad reference pixel is
        # rejected even though each row has only a few samples
        flat = side.ravel()
        flat = flat[np.isfinite(flat)]  # NaN reference pixels are left out throughout
        sigma = 1.4826 * np.median(np.abs(flat - np.median(flat))) if flat.size else 0.0
        raw = np.empty(ny, dtype=np.float64)
        for y in range(ny):
            good = side[y][np.isfinite(side[y])]
            if good.size == 0:
                raw[y] = np.nan
                continue
            med = np.median(good)
            total = 0.0
            count = 0
            for v in good:
                if abs(v - med) <= 5.0 * sigma:
                    total += v
                    count += 1
            raw[y] = total / count if count else med
        half = smooth // 2
        for y in range(ny):
            lo = max(0, y - half)
            hi = min(ny, y + half + 1)
            # least-squares line through (row, value) over the window, evaluated at y
            n = 0
            sx = 0.0
            sy = 0.0
            for k in range(lo, hi):
                if np.isfinite(raw[k]):
                    n += 1
                    sx += k
                    sy += raw[k]
            if n == 0:
                rows[i, y] = 0.0
                continue
            mx = sx / n
            my = sy / n
            sxx = 0.0
            sxy = 0.0
            for k in range(lo, hi):
                if np.isfinite(raw[k]):
                    sxx += (k - mx) * (k - mx)
                    sxy += (k - mx) * (raw[k] - my)
            slope = sxy / sxx if sxx > 0 else 0.0
            rows[i, y] = my + slope * (y - mx)


def shift_bias(resultants, channel, row, add=False, rows_at_once=32):
    """Subtract (or with ``add``, add back) the bias ``channel[i, x // width] + row[i, y]``
    of :func:`refpix_offsets` from every resultant, in place, computed in the bias arrays'
    precision; a block of rows per thread (numpy releases the GIL)."""
    channel, row = np.asarray(channel), np.asarray(row)
    nres, _, nx = resultants.shape
    columns = np.repeat(channel, nx // channel.shape[1], axis=1)  # (nres, nx)
    shift = np.add if add else np.subtract

    def shift_rows(rows):
        for i in range(nres):
            level = columns[i][None, :] + row[i, rows][:, None]
            shift(resultants[i, rows], level, out=resultants[i, rows])

    on_row_blocks(shift_rows, resultants.shape[1], rows_at_once)


def refpix_offsets(resultants, border=4, nchannels=32, smooth=11):
    """The bias estimates without applying them.

    Returns ``(channel, row)``: float64 arrays (nresultants, nchannels) and
    (nresultants, ny); the bias of pixel (y, x) in resultant i is
    ``channel[i, x // (nx // nchannels)] + row[i, y]``.
    """
    if resultants.ndim != 3:
        raise ValueError(f"resultants must be 3-D (nresultants, ny, nx), got shape {resultants.shape}")
    nres, ny, nx = resultants.shape
    if nx % nchannels:
        raise ValueError(f"{nx} columns do not split into {nchannels} channels")
    if border < 1 or 2 * border >= min(ny, nx):
        raise ValueError(f"border {border} does not fit a {ny}x{nx} array")
    if smooth < 2:
        raise ValueError("smooth must be at least 2 rows")
    channel = np.empty((nres, nchannels))
    on_threads(_channel_offsets, nres * nchannels, resultants, border, channel)
    row = np.empty((nres, ny))
    on_threads(_row_offsets, nres, resultants, channel, border, smooth, row)
    return channel, row


def correct_refpix(resultants, border=4, nchannels=32, smooth=11):
    """Subtract the per-channel and per-row bias measured in the reference border, in place.

    Parameters
    ----------
    resultants : float32 (nresultants, N, N), full detector with its reference border.
    border : width in pixels of the reference border on every side.
    nchannels : amplifier channels, each ``N // nchannels`` columns wide.
    smooth : rows in the window used to smooth the left/right reference columns.

    Returns the subtracted bias as :func:`refpix_offsets` gives it: ``(channel, row)``.
    """
    channel, row = refpix_offsets(resultants, border, nchannels, smooth)
    shift_bias(resultants, channel, row)
    return channel, row


def _robust_variance(pairs):
    """Variance of single values from differences of neighbours with the same bias."""
    return (1.4826 * np.median(np.abs(pairs - np.median(pairs)))) ** 2 / 2.0


def refpix_variance(resultants, read_pattern, border=4, nchannels=32, smooth=11):
    """Variance that the subtracted bias estimates add to every pixel, per read.

    Returns ``(channel, row)``: float64 arrays (nchannels,) and (ny,) in DN^2 per read. In
    resultant i (of ``N_i`` reads) pixel (y, x) gets ``(channel[x // (nx // nchannels)] +
    row[y]) / N_i`` on top of its own read noise: adding ``channel[c] + row[y]`` to the
    per-read read-noise variance accounts for it. Clipping is neglected (it removes
    only outliers).

    The reference pixels' noise per read is measured here, per channel, in the top and
    bottom reference rows, from double differences: between consecutive resultants (which
    removes each pixel's fixed bias pattern, a few hundred DN on a real detector) and then
    between horizontally adjacent pixels (which removes the per-read drifts common to a row
    and channel). Each pair's variance is scaled by ``1 / (1/N_i + 1/N_(i+1))`` and the median
    over the pairs is used. A single resultant falls back to the horizontal differences
    alone (which take a fixed pattern for noise).
    """
    if len(read_pattern) != resultants.shape[0]:
        raise ValueError(f"read_pattern has {len(read_pattern)} resultants, data has {resultants.shape[0]}")
    nres, ny, nx = resultants.shape
    width = nx // nchannels
    nreads = np.array([len(reads) for reads in read_pattern], dtype=np.float64)
    sigma2 = np.empty(nchannels)
    for c in range(nchannels):
        columns = slice(c * width, (c + 1) * width)
        rows = np.concatenate([resultants[:, :border, columns], resultants[:, ny - border:, columns]], axis=1)
        rows = rows.astype(np.float64)
        if nres == 1:
            estimates = [_robust_variance(np.diff(rows[0], axis=1).ravel()) * nreads[0]]
        else:
            double = np.diff(np.diff(rows, axis=0), axis=2)
            estimates = [_robust_variance(double[i].ravel()) / (1 / nreads[i] + 1 / nreads[i + 1])
                         for i in range(nres - 1)]
        sigma2[c] = np.median(estimates)
    offset = sigma2 / (2 * border * width)  # variance of each channel offset
    weights = np.eye(nchannels)
    weights[:, 0] -= 0.5
    weights[:, -1] -= 0.5
    channel = (weights**2) @ offset
    half = smooth // 2
    y = np.arange(ny)
    lo = np.maximum(0, y - half)
    hi = np.minimum(ny, y + half + 1)
    n = hi - lo
    centre = (lo + hi - 1) / 2.0
    spread = n * (n * n - 1) / 12.0  # sum of (k - centre)^2 over the window
    leverage = 1.0 / n + (y - centre) ** 2 / spread
    row = (sigma2[0] + sigma2[-1]) / (4 * border) * leverage
    return channel, row


_ROWS_AT_ONCE = 256


def read_noise_with_refpix(read_noise, channel, row):
    """Per-read read noise with the refpix estimates' variance folded in (full detector).

    ``read_noise`` (ny, nx) in DN per read; ``channel`` (nchannels,) and ``row`` (ny,) from
    :func:`refpix_variance`. Returns float32 ``sqrt(read_noise^2 + channel[x // width] + row[y])``.
    """
    ny, nx = np.shape(read_noise)
    per_column = np.repeat(np.asarray(channel, np.float64), nx // len(channel))[None, :]
    row = np.asarray(row, np.float64)[:, None]
    out = np.empty((ny, nx), np.float32)
    for start in range(0, ny, _ROWS_AT_ONCE):  # float64 a block of rows at a time, not a whole frame
        rows = slice(start, start + _ROWS_AT_ONCE)
        out[rows] = np.sqrt(np.asarray(read_noise[rows], np.float64) ** 2 + (per_column + row[rows]))
    return out
