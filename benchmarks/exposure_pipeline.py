"""Full-detector ExposurePipeline benchmark: wall time and peak memory per step.

    python benchmarks/exposure_pipeline.py [--size 4096] [--nresultants 6] [--repeat 3] [--workdir DIR]

Simulates one exposure (once; reused if present), then runs ``strun exposure_pipeline`` in a
fresh process ``--repeat`` times and prints, per step, the median wall time and peak RSS read
from the product's ``meta.resources``. The baseline, measured in the same run, is one plain
numpy pass over the same raw cube (read it and sum the resultants in float32): the least any
pipeline must spend touching the data. Targets for a 4096x4096x6 detector on 2 cores: the
whole pipeline under 20 s and 1.5 GB (the Roman pipeline takes 185 s and 5.5 GB).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUN_ONE = r"""
import json, sys, time
from calpipe.pipelines import ExposurePipeline
from calpipe import datamodels
from calpipe.resources import ResourceMonitor
uncal, out, refs, refcat = sys.argv[1:5]
with ResourceMonitor() as whole:
    ExposurePipeline.call(uncal, output_dir=out, ref_store=refs, save_results=True,
                          steps={"tweakreg": {"abs_refcat": refcat}})
root = ExposurePipeline.remove_suffix(uncal.rsplit('/', 1)[-1].rsplit('.', 1)[0])[0]
with datamodels.open(f"{out}/{root}_cal.asdf") as cal:
    resources = cal.meta.resources.to_dict()
print(json.dumps({"steps": resources, "process_wall": whole.wall_seconds,
                  "process_peak_mb": whole.peak_rss / 2**20}))
"""

BASELINE = r"""
import sys, time, numpy as np
from calpipe import datamodels
from calpipe.resources import ResourceMonitor
datamodels.open(sys.argv[1]).close()  # load the schemas and extensions outside the timing
with ResourceMonitor() as m:
    with datamodels.open(sys.argv[1]) as raw:
        total = np.zeros(raw.data.shape[1:], np.float32)
        for plane in raw.data:
            total += plane
print(m.wall_seconds, m.peak_rss / 2**20)
"""


def run_python(code, *args):
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"benchmark run failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--nresultants", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default="bench-exposure")
    args = parser.parse_args()

    from calpipe.simulate import simulate

    work = Path(args.workdir) / f"{args.size}x{args.nresultants}"
    uncal = next(work.glob("*_uncal.asdf"), None)
    refcat = next(work.glob("*_refcat.ecsv"), None)
    if uncal is None or refcat is None:
        t0 = time.perf_counter()
        sim = simulate(work, size=args.size, nresultants=args.nresultants, seed=1, progress=print)
        uncal, refcat = sim.uncal, sim.refcat
        print(f"simulated {uncal} in {time.perf_counter() - t0:.1f} s")
    refs = work / "refs"

    baseline = [tuple(map(float, run_python(BASELINE, uncal).split())) for _ in range(args.repeat)]
    base_wall = statistics.median(b[0] for b in baseline)
    base_mem = statistics.median(b[1] for b in baseline)

    runs = []
    for i in range(args.repeat):
        runs.append(json.loads(run_python(RUN_ONE, uncal, work / "out", refs, refcat)))
        print(f"run {i + 1}/{args.repeat}: {runs[-1]['process_wall']:.1f} s", flush=True)

    from calpipe.pipelines import ExposurePipeline

    steps = [s for s in [*ExposurePipeline.step_defs, "exposure_pipeline"] if s in runs[0]["steps"]]
    print(f"\nExposurePipeline on {args.size}x{args.size} x {args.nresultants} resultants, "
          f"{os.cpu_count()} cores, median of {args.repeat} runs")
    print(f"baseline (numpy read + one float32 pass over the raw cube): {base_wall:.2f} s, {base_mem:.0f} MB\n")
    print(f"{'step':<18}{'wall s':>9}{'x baseline':>12}{'peak RSS MB':>13}")
    for step in steps:
        wall = statistics.median(r["steps"][step]["wall_seconds"] for r in runs)
        peak = statistics.median(r["steps"][step]["peak_rss_mb"] for r in runs)
        print(f"{step:<18}{wall:>9.2f}{wall / base_wall:>12.1f}{peak:>13.0f}")
    wall = statistics.median(r["process_wall"] for r in runs)
    peak = statistics.median(r["process_peak_mb"] for r in runs)
    print(f"{'whole process':<18}{wall:>9.2f}{wall / base_wall:>12.1f}{peak:>13.0f}")
    print("\ntargets: < 20 s and < 1500 MB; Roman pipeline: 185 s and 5500 MB "
          f"(ratio to it: {185 / wall:.1f}x faster, {5500 / peak:.1f}x less memory)")


if __name__ == "__main__":
    main()
