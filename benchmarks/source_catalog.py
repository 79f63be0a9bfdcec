"""source_catalog kernel on a calibrated image: wall and CPU time, and agreement with another
implementation of the kernel measured in the same run.

    python benchmarks/source_catalog.py CAL_FILE [--repeat 3] [--against OTHER_CATALOG_PY]

``CAL_FILE`` is a ``_cal.asdf`` product (``benchmarks/exposure_pipeline.py`` leaves a full
4096x4096 one in ``bench-exposure/4096x6/out/``). ``--against`` names another version of
``calpipe/kernels/catalog.py`` to time and compare with, for example the main branch's:

    git show main:calpipe/kernels/catalog.py > /tmp/catalog_main.py
    python benchmarks/source_catalog.py bench-exposure/4096x6/out/*_cal.asdf --against /tmp/catalog_main.py

Printed: median wall and CPU seconds of ``--repeat`` runs of each (parameters as the step's
defaults), the sources each finds, how many match within 0.5 pixel, and per column the median
and 95th percentile of the absolute difference over matched sources. Target: at most 3 s at
4096x4096 on 2 cores.
"""

import argparse
import importlib.util
import statistics
import time

import numpy as np

STEP_DEFAULTS = {"aperture_radii": (3.0, 6.0), "kron_params": (2.5, 1.4)}


def load_kernel(path):
    spec = importlib.util.spec_from_file_location(f"catalog_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(kernel, inputs, repeat):
    kernel.source_catalog(*(a[:256, :256] for a in inputs[:2]))  # imports and compilation
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        table, _ = kernel.source_catalog(*inputs, **STEP_DEFAULTS)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return table, statistics.median(walls), statistics.median(cpus)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cal_file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--against", help="another catalog.py to time and compare with")
    args = parser.parse_args()

    from scipy.spatial import cKDTree

    from calpipe import datamodels
    from calpipe import dqflags
    from calpipe.kernels import catalog

    with datamodels.open(args.cal_file) as cal:
        dq = np.asarray(cal.dq)
        inputs = (np.array(cal.data), np.array(cal.err), (dq & dqflags.DO_NOT_USE) > 0,
                  (dq & dqflags.SATURATED) > 0)
    print(f"{args.cal_file}: {inputs[0].shape[1]}x{inputs[0].shape[0]}, median of {args.repeat} runs")
    table, wall, cpu = timed(catalog, inputs, args.repeat)
    print(f"this kernel:  {wall:6.2f} s wall {cpu:6.2f} s CPU   {len(table)} sources   (target <= 3 s)")
    if not args.against:
        return
    other, other_wall, other_cpu = timed(load_kernel(args.against), inputs, args.repeat)
    print(f"--against:    {other_wall:6.2f} s wall {other_cpu:6.2f} s CPU   {len(other)} sources   "
          f"(ratio {other_wall / wall:.1f}x wall, {other_cpu / cpu:.1f}x CPU)")
    dist, index = cKDTree(np.column_stack([other["x_centroid"], other["y_centroid"]])).query(
        np.column_stack([table["x_centroid"], table["y_centroid"]]))
    ok = dist < 0.5
    print(f"matched within 0.5 pixel: {ok.sum()} of {len(table)} and {len(other)}")
    print(f"{'column':<20}{'median |diff|':>15}{'p95 |diff|':>13}")
    for name in table.colnames:
        if name in other.colnames and name not in ("label", "orientation"):
            a = np.asarray(table[name], float)[ok]
            b = np.asarray(other[name], float)[index[ok]]
            finite = np.isfinite(a) & np.isfinite(b)
            if finite.any():
                diff = np.abs(a[finite] - b[finite])
                print(f"{name:<20}{np.median(diff):>15.3g}{np.percentile(diff, 95):>13.3g}")
    same = np.asarray(table["flags"])[ok] == np.asarray(other["flags"])[index[ok]]
    print(f"flags equal for {same.mean():.1%} of matched sources")


if __name__ == "__main__":
    main()
