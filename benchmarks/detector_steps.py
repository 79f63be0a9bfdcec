"""Accuracy and speed of the saturation, linearity and refpix kernels on read-level ramps.

    python benchmarks/detector_steps.py [--size 4096] [--repeat 3] [--time-only]

The ramps come from the tests' read-level construction (tests/support/readout.py: Poisson
charge read by read, a response with a knee near full well, a pedestal, read noise),
which shares no code with ``calpipe.simulate``. Printed:

- saturation: per read pattern, the share of pixels saturating inside a resultant whose
  saturated resultants are all flagged, and the share of unsaturated pixels given a flag,
  by how close their last read came to the threshold;
- linearity: slope bias and median z at 0.95 of saturation, the polynomial applied to
  the resultant means (the correction before multi-read resultants were handled; the same
  kernel given single-read resultants) against the correction through the reads;
- linearity time on a ``size x size x 6`` cube, the baseline being the polynomial of the
  means (same kernel, same cube, alternating, median of ``--repeat``);
- the Roman corrections' time on the same cube against the linearity through the reads
  (alternating, median of ``--repeat``): dark decay (``subtract_dark_decay``) and the
  integral non-linearity table (``correct_integral_nonlinearity``, 32 channels, 1025 counts);
- refpix: the variance its estimates add, as a share of the read-noise variance; and the
  mean error of the estimates over 150 dark 256x256 exposures (tests/kernels/test_refpix.py's
  construction), per resultant, with its standard error: a bias would show here.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import readout  # noqa: E402
from support.refpix_darks import PATTERN, dark_exposure  # noqa: E402

from calpipe.kernels.dark_decay import pixel_read_times, subtract_dark_decay  # noqa: E402
from calpipe.kernels.linearity import correct_integral_nonlinearity, correct_linearity  # noqa: E402
from calpipe.kernels.ramp import fit_ramps  # noqa: E402
from calpipe.kernels.refpix import refpix_offsets, refpix_variance  # noqa: E402
from calpipe.kernels.saturation import flag_saturation  # noqa: E402
from calpipe.simulate import READ_PATTERNS  # noqa: E402

PEDESTAL = 5000.0
LEVEL = 0.97 * readout.FULL_WELL
PATTERNS = {"skip, last of 8": [[1], [3, 4], [6, 7, 8, 9], [11, 12, 13, 14], list(range(16, 24))],
            "last of 4": [[1], [2, 3], [5, 6, 7, 8], [10, 11, 12, 13], [15, 16, 17, 18]],
            "8x8": READ_PATTERNS["8x8"], "3": READ_PATTERNS["3"], "skip6": READ_PATTERNS["skip6"]}


def saturation(npix=100_000):
    print("saturation (100 000 pixels per pattern, last read 0.4-1.6 of the threshold)")
    print(f"  {'pattern':<16} {'saturated':>9} {'flagged':>8} {'inside last':>11} {'flagged':>8}"
          f"  false flags at 0.90-0.95 / 0.95-0.98 / 0.98-1.00 of the threshold")
    for name, pattern in PATTERNS.items():
        rng = np.random.default_rng(1)
        rate = readout.counts_for(LEVEL, pattern) * rng.uniform(0.4, 1.6, npix)
        res, reads = readout.ramps(rate, pattern, seed=2, pedestal=PEDESTAL)
        cube = res.reshape(len(pattern), 1, npix)
        gdq = np.zeros(cube.shape, np.uint8)
        flag_saturation(cube, np.full((1, npix), PEDESTAL + LEVEL, np.float32), pattern, gdq,
                        np.zeros((1, npix), np.uint32))
        flagged = (gdq[:, 0] & 2) > 0
        holds = reads[np.array([r[-1] for r in pattern]) - 1] >= LEVEL
        complete = (flagged | ~holds).all(axis=0)
        false = (flagged & ~holds).any(axis=0)
        peak = reads[-1] / LEVEL
        inside = holds[-1] & (res < PEDESTAL + LEVEL).all(axis=0)
        bins = " / ".join(f"{false[(peak >= lo) & (peak < hi)].mean():.3f}"
                          for lo, hi in ((0.9, 0.95), (0.95, 0.98), (0.98, 1.0)))
        print(f"  {name:<16} {holds[-1].sum():>9} {complete[holds[-1]].mean():>8.4f} {inside.sum():>11} "
              f"{complete[inside].mean() if inside.any() else float('nan'):>8.4f}  {bins}")


def linearity_bias(npix=4000):
    print("linearity: slopes at 0.95 of saturation (4000 noisy pixels)")
    for name in ("8x8", "skip, last of 8", "skip6", "3"):
        pattern = PATTERNS[name]
        rng = np.random.default_rng(4)
        rate = readout.counts_for(0.95 * LEVEL, pattern) * rng.uniform(0.97, 1.0, npix)
        res, _ = readout.ramps(rate, pattern, seed=5)
        line = []
        for label, pat in (("means", [[i + 1] for i in range(len(pattern))]), ("reads", pattern)):
            cube = res.reshape(len(pattern), 1, npix).copy()
            gdq = np.zeros(cube.shape, np.uint8)
            correct_linearity(cube, gdq, readout.coefficient_cube((1, npix)), np.zeros((1, npix), np.uint32), pat)
            fit = fit_ramps(cube, gdq, np.full((1, npix), readout.READ_NOISE, np.float32),
                            np.full((1, npix), readout.GAIN, np.float32), pattern, readout.FRAME_TIME)
            z = (fit.slope[0] - rate) / fit.err[0]
            line.append(f"{label}: bias {np.median(fit.slope[0] / rate - 1) * 100:+.3f} %, median z {np.median(z):+.2f}")
        print(f"  {name:<16} " + "   ".join(line))


def _linearity_case(size):
    """A ``size x size x 6`` cube of straight ramps and a cubic polynomial for it."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 30000, (size, size)).astype(np.float32)
    coeffs = np.zeros((6, size, size), np.float32)
    coeffs[1], coeffs[2], coeffs[3] = 1.0, 1e-6, 1e-11
    return np.stack([base * (i + 1) / 6 for i in range(6)]), coeffs


def linearity_time(size, repeat):
    pattern = READ_PATTERNS["uneven6"]
    cube0, coeffs = _linearity_case(size)
    gdq = np.zeros(cube0.shape, np.uint8)

    def run(pat):
        cube = cube0.copy()
        t0 = time.perf_counter()
        correct_linearity(cube, gdq, coeffs, np.zeros((size, size), np.uint32), pat)
        return time.perf_counter() - t0

    single = [[i + 1] for i in range(6)]
    run(single), run(pattern)  # compile or load from cache
    means, reads = [], []
    for _ in range(repeat):
        means.append(run(single))
        reads.append(run(pattern))
    m, r = statistics.median(means), statistics.median(reads)
    print(f"linearity time, {size}x{size}x6 uneven6: means {m:.2f} s, through the reads {r:.2f} s, ratio {r / m:.2f}")


def roman_corrections_time(size, repeat):
    pattern = READ_PATTERNS["uneven6"]
    cube0, coeffs = _linearity_case(size)
    gdq = np.zeros(cube0.shape, np.uint8)
    value = np.linspace(0, 65535, 1025)
    table = 3 * np.sin(value[None, :] / 2000 + np.arange(32)[:, None])
    times = pixel_read_times((size, size), 3.04, 1)
    runs = {
        "linearity (baseline)": lambda c: correct_linearity(c, gdq, coeffs, np.zeros((size, size), np.uint32),
                                                            pattern),
        "integral non-linearity": lambda c: correct_integral_nonlinearity(c, gdq, pattern, value, table),
        "dark decay": lambda c: subtract_dark_decay(c, pattern, 3.04, 30.0, 20.0, times),
    }
    spent = {name: [] for name in runs}
    for k in range(repeat + 1):  # the first round compiles or loads from the cache
        for name, run in runs.items():
            cube = cube0.copy()
            t0 = time.perf_counter()
            run(cube)
            if k:
                spent[name].append(time.perf_counter() - t0)
    base = statistics.median(spent["linearity (baseline)"])
    for name, values in spent.items():
        m = statistics.median(values)
        print(f"{name} time, {size}x{size}x6 uneven6: {m:.2f} s, ratio to linearity {m / base:.2f}")


def refpix_share():
    for size in (1024, 4096):
        rng = np.random.default_rng(0)
        cube = np.rint(5000 + readout.READ_NOISE * rng.standard_normal((2, size, size))).astype(np.float32)
        channel, row = refpix_variance(cube, [[1], [2]])
        share = (np.repeat(channel, size // 32)[None, :] + row[:, None])[4:-4, 4:-4].mean() / readout.READ_NOISE**2
        print(f"refpix: {size}x{size}, 32 channels: estimates add {share * 100:.2f} % to the read-noise variance")
    errors = []
    for seed in range(150):
        cube, bias = dark_exposure(1000 + seed)
        channel, row = refpix_offsets(cube, border=4, nchannels=8)
        estimate = np.repeat(channel, cube.shape[2] // 8, axis=1)[:, None, :] + row[:, :, None]
        errors.append((estimate - bias)[:, 4:-4, 4:-4].mean(axis=(1, 2)))
    errors = np.array(errors)
    mean, sem = errors.mean(axis=0), errors.std(axis=0) / np.sqrt(len(errors))
    print("refpix: mean error per resultant over 150 dark exposures (DN): "
          + ", ".join(f"{m:+.3f} +- {e:.3f}" for m, e in zip(mean, sem)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--time-only", action="store_true", help="only the timings")
    args = parser.parse_args()
    if args.time_only:
        linearity_time(args.size, args.repeat)
        roman_corrections_time(args.size, args.repeat)
        return
    saturation()
    linearity_bias()
    linearity_time(args.size, args.repeat)
    roman_corrections_time(args.size, args.repeat)
    refpix_share()


if __name__ == "__main__":
    main()
