"""Dark decay: the signal a detector still shows after reset, fading exponentially with time.

Units: counts in DN, times in seconds. The signal of read ``k`` (numbered from 1) at a pixel
read ``t_pix`` seconds into its frame is ``A * exp(-t / tau)`` with
``t = (k - read_zero) * frame_time + t_pix``; ``read_zero = 1.5`` puts ``t = 0`` (where the
amplitude ``A`` is measured) in the middle of the first read. A resultant holds the mean of
its reads, so its share is the mean of that signal over its reads. The signal separates into
a factor per read and a factor per pixel, so the mean is exact for any read pattern at the
cost of one frame-sized array.

Pixel read times (:func:`pixel_read_times`): each of the detector's readout channels (an
equal band of columns) reads its pixels row by row in one frame time; neighbouring channels
read their columns in opposite directions; a detector whose number is a multiple of three is
mounted mirrored in x (its columns read backwards), every other one mirrored in y.
"""

import numpy as np

NCHANNELS = 32
READ_ZERO = 1.5


def pixel_read_times(shape, frame_time, detector_number, nchannels=NCHANNELS):
    """Seconds after the start of a frame at which each pixel of a full frame ``shape`` is read.

    Parameters
    ----------
    shape : (ny, nx) of the full detector (reference border included); ``nx`` a multiple of
        ``nchannels``.
    frame_time : float, seconds per read.
    detector_number : int, 1-18 (WFI01 is 1).
    nchannels : int, readout channels across the columns.

    Returns
    -------
    float64 (ny, nx) in [0, frame_time).
    """
    ny, nx = shape
    if nx % nchannels:
        raise ValueError(f"{nx} columns do not split into {nchannels} channels")
    width = nx // nchannels
    channel = np.arange(ny * width, dtype=np.float64).reshape(ny, width) * (frame_time / (ny * width))
    pair = np.concatenate([channel, channel[:, ::-1]], axis=1)
    times = np.tile(pair, (1, (nchannels + 1) // 2))[:, :nx]
    times = times[:, ::-1] if detector_number % 3 == 0 else times[::-1, :]
    return np.ascontiguousarray(times)


def read_decay(read, frame_time, amplitude, time_constant, pixel_times, read_zero=READ_ZERO):
    """The decay signal (DN) of read number ``read`` at every pixel: the per-read truth."""
    t = (read - read_zero) * frame_time + pixel_times
    return amplitude * np.exp(-t / time_constant)


def resultant_factors(read_pattern, frame_time, time_constant, read_zero=READ_ZERO):
    """Per resultant, the mean over its reads of ``exp(-(k - read_zero) * frame_time / tau)``."""
    return np.array([
        np.mean(np.exp(-(np.asarray(reads, np.float64) - read_zero) * frame_time / time_constant))
        for reads in read_pattern
    ])


def subtract_dark_decay(resultants, read_pattern, frame_time, amplitude, time_constant, pixel_times,
                        read_zero=READ_ZERO):
    """Subtract the mean decay signal of each resultant's reads, in place.

    Parameters
    ----------
    resultants : float32 (nresultants, ny, nx), DN.
    read_pattern : read numbers per resultant.
    frame_time : float, seconds per read.
    amplitude : float, DN at ``t = 0``.
    time_constant : float, seconds (> 0).
    pixel_times : float (ny, nx), :func:`pixel_read_times` of the frame.
    read_zero : float, the read number at which ``t = 0``.

    Returns the per-resultant factors (the decay at a pixel read at the start of the frame is
    ``amplitude`` times the factor).
    """
    if not time_constant > 0:
        raise ValueError(f"time_constant must be > 0 seconds, got {time_constant}")
    if len(read_pattern) != resultants.shape[0]:
        raise ValueError(f"read_pattern has {len(read_pattern)} resultants, data has {resultants.shape[0]}")
    if pixel_times.shape != resultants.shape[1:]:
        raise ValueError(f"pixel_times shape {pixel_times.shape} does not match data {resultants.shape[1:]}")
    factors = resultant_factors(read_pattern, frame_time, time_constant, read_zero)
    spatial = (amplitude * np.exp(-pixel_times / time_constant)).astype(np.float32)
    for i, factor in enumerate(factors):
        resultants[i] -= np.float32(factor) * spatial
    return factors
