"""Time the whole `calpipe model predict` command, as a user runs it.

    python benchmarks/model_predict.py --db training.db ASN.json [--repeat 5]

Runs the command ``--repeat`` times in fresh processes and prints the median wall-clock
and CPU time (user + system, of the child process), beside a baseline measured in the same
run: a process that only starts Python and imports ``calpipe.cli``. On a shared machine
the CPU times are the figures to compare; wall-clock times include waiting for a core.
It also lists the heavy modules the command never imports (sklearn, scipy, asdf,
stpipe, roman_datamodels): predicting needs numpy, SQLAlchemy and a YAML reader only.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

HEAVY = ("sklearn", "scipy", "asdf", "stpipe", "roman_datamodels", "gwcs", "astropy")


def timed(argv):
    """(wall s, CPU s) of one run of ``argv`` in a child process; raises if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def medians(argv, repeat):
    runs = [timed(argv) for _ in range(repeat)]
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("asn", nargs="+", help="association files to predict for")
    ap.add_argument("--db", required=True, help="training database with a trained model")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    command = [sys.executable, "-m", "calpipe.cli", "model", "predict", *args.asn, "--db", args.db]
    probe = ("import runpy, sys; sys.argv = {!r}; "
             "import calpipe.cli as c\ntry:\n c.main(sys.argv[1:])\nexcept SystemExit:\n pass\n"
             "print(' '.join(m for m in {!r} if m in sys.modules), file=sys.stderr)").format(command[2:], HEAVY)
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stderr.strip().splitlines()
    base_wall, base_cpu = medians([sys.executable, "-c", "import calpipe.cli"], args.repeat)
    wall, cpu = medians(command, args.repeat)
    print(f"load average {os.getloadavg()[0]:.1f}; medians of {args.repeat} runs")
    print(f"calpipe model predict     wall {wall:6.2f} s   CPU {cpu:5.2f} s")
    print(f"python + import calpipe   wall {base_wall:6.2f} s   CPU {base_cpu:5.2f} s")
    print(f"ratio to the baseline     wall {wall / base_wall:6.2f}     CPU {cpu / base_cpu:5.2f}")
    print(f"heavy modules imported: {(loaded[-1] if loaded else '') or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
