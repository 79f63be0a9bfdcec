"""Read-level dark exposures for the reference-pixel tests and benchmark."""

import numpy as np

# Per read: a pedestal and a drift per channel, a jitter common to all channels, a row common
# mode of sinusoids with new phases, and read noise on every pixel; no light. Resultants are
# rounded means of their reads.
SIZE, CHANNELS, READ_NOISE = 256, 8, 5.5
PATTERN = [[1], [2, 3], [4, 5, 6, 7], [8, 9, 10, 11, 12, 13], [14], [15, 16, 17]]


def dark_exposure(seed, size=SIZE, nchannels=CHANNELS):
    """(resultants float32, true bias (nres, size, size))."""
    rng = np.random.default_rng(seed)
    nres = len(PATTERN)
    pedestal = rng.uniform(4000, 7000, nchannels)
    trend = rng.normal(0, 0.3, nchannels)
    y = np.arange(size)[:, None]
    total = np.zeros((nres, size, size))
    bias = np.zeros((nres, size, size))
    for i, reads in enumerate(PATTERN):
        for k in reads:
            channel = pedestal + 3.04 * k * trend + rng.normal(0, 3) + rng.normal(0, 1.5, nchannels)
            rows = sum(a * np.sin(2 * np.pi * y / p + rng.uniform(0, 2 * np.pi))
                       for a, p in ((4, 2900), (2, 1100), (1, 450)))
            read_bias = np.repeat(channel, size // nchannels)[None, :] + rows
            bias[i] += read_bias / len(reads)
            total[i] += (read_bias + READ_NOISE * rng.standard_normal((size, size))) / len(reads)
    return np.rint(total).astype(np.float32), bias
