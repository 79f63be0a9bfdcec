"""Accuracy of the ramp fits on simulated ramps with known truth.

For count rates from 0.1 to 1e4 DN/s it prints, per algorithm: the bias and spread of
the normalised residuals ``(slope - truth) / err`` on clean pixels (median and robust
standard deviation 1.4826 MAD, both ideally 0 and 1), the scatter of the slope itself,
the false jump rate on clean pixels, and the completeness of jump detection by jump
size (in units of the noise of the resultant difference that holds the jump). When
``stcal`` is importable the same table is printed for its two fits.

Simulation: Poisson electrons accumulated read by read (the gain converts DN/s to e/s),
Gaussian read noise per read, reads averaged into resultants by the read pattern.

    python benchmarks/ramp_accuracy.py [--npix 20000] [--nresultants 6|12] [--seed 1]
                                       [--readlevel-npix 1048576]

Then the cases of the read-level generator (tests/support/readlevel.py, no code shared
with calpipe): pixels with one to three hits of 20-1000 sigma at random reads (6 uneven
resultants), and clean pixels for every pattern (3, 6 uneven, 8 many-read, 24, 40
resultants) from zero flux to 0.95 of full well, 1024 x 1024 pixels per case by default.

The cases and their metrics live in tests/support/ramp_cases.py, which the accuracy tests
run in a small form.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import readlevel as rl  # noqa: E402
from tests.support.ramp_cases import (  # noqa: E402,F401  (stcal_likely: benchmarks/ramp_fit.py)
    FRACTIONS, FRAME_TIME, GAIN, READ_NOISE, READ_PATTERNS, accuracy_table, clean_case,
    multi_hit_case, stcal_likely)


def readlevel_tables(algorithms, npix, seed=1):
    """The generator cases as printable lines, algorithms side by side."""
    lines = [f"== multiple hits of 20-1000 sigma at random reads, 6 uneven resultants, {npix} pixels",
             f"{'algorithm':>14} {'hits':>4} {'|z|>5 unflagged':>15} {'flagged':>8} {'rstd z':>7} "
             f"{'JUMP_DET':>8}"]
    for nhits in (1, 2, 3):
        for algorithm in algorithms:
            r = multi_hit_case(algorithm, nhits, npix, seed)
            lines.append(f"{algorithm:>14} {nhits:>4} {r['bad_z']:>15.4f} {r['flagged']:>8.4f} "
                         f"{r['rstd_z']:>7.3f} {r['found']:>8.4f}")
    lines.append(f"== clean pixels, {npix} per flux bin (fraction of full well at the last read)")
    lines.append(f"{'pattern':>12} {'fraction':>8} {'DN/s':>8} {'algorithm':>14} {'median z':>9} "
                 f"{'rstd z':>7} {'false jumps':>11} {'bias/se':>8}")
    for pattern in rl.PATTERNS:
        for fraction in FRACTIONS:
            for algorithm in algorithms:
                if algorithm == "stcal-likely" and len(rl.PATTERNS[pattern]) < 4:
                    continue  # stcal refuses fewer than 4 resultants
                r = clean_case(algorithm, pattern, fraction, npix, seed)
                lines.append(f"{pattern:>12} {fraction:>8g} {r['rate']:>8.3g} {algorithm:>14} "
                             f"{r['median_z']:>9.4f} {r['std_z']:>7.4f} {r['false_jumps']:>11.5f} "
                             f"{r['bias_se']:>8.2f}")
    return lines


def format_table(algorithm, rows):
    sizes = list(rows[0]["completeness"])
    head = (f"{'flux DN/s':>10} {'median z':>9} {'rstd z':>7} {'rstd slope':>11} "
            f"{'false jumps':>11} " + " ".join(f"{f'{s:g}x found':>10}" for s in sizes))
    lines = [f"== {algorithm}", head]
    for r in rows:
        lines.append(
            f"{r['flux']:>10g} {r['median_z']:>9.4f} {r['std_z']:>7.4f} {r['slope_std']:>11.4g} "
            f"{r['false_jump_rate']:>11.5f} "
            + " ".join(f"{r['completeness'][s]:>10.4f}" for s in sizes))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--npix", type=int, default=20000, help="pixels per flux bin")
    parser.add_argument("--nresultants", type=int, default=6, choices=sorted(READ_PATTERNS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--readlevel-npix", type=int, default=1024 * 1024,
                        help="pixels per case of the read-level generator cases (0: skip them)")
    args = parser.parse_args(argv)
    pattern = READ_PATTERNS[args.nresultants]
    print(f"read pattern {pattern}, frame time {FRAME_TIME} s, read noise {READ_NOISE} DN/read, "
          f"gain {GAIN} e/DN, {args.npix} pixels per flux")
    print("z = (slope - truth) / err on clean pixels; 'Nx found': jump of N x the noise of its "
          "resultant difference flagged at its resultant")
    algorithms = ["likely", "optimal"]
    try:
        import stcal  # noqa: F401

        algorithms += ["stcal-likely", "stcal-optimal"]
    except ImportError:
        print("stcal not installed: no comparison")
    for algorithm in algorithms:
        rows = accuracy_table(algorithm, npix=args.npix, read_pattern=pattern, seed=args.seed)
        print(format_table(algorithm, rows))
    if args.readlevel_npix > 0:
        for line in readlevel_tables(algorithms, args.readlevel_npix, args.seed):
            print(line, flush=True)


if __name__ == "__main__":
    main()
