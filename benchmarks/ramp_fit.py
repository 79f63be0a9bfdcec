"""Throughput and peak memory of the ramp fits on a full detector.

Builds a synthetic 4096x4096 ramp (uneven read pattern; sky of 0.5-5 DN/s with stars up
to 1e4 DN/s; Poisson noise per read, read noise 6 DN per read, gain 2 e/DN; cosmic rays
on 1% of pixels; saturation at 60000 DN), then for each algorithm, each in a fresh
process: JIT compile time (in an empty Numba cache), the median wall time of
``--repeat`` fits, Mpix/s and the peak resident memory (VmHWM) against the memory of
the loaded cube. When ``stcal`` is importable, its Cython optimal-weighting fit
(``ols_cas22``) and its likelihood fit run in the same process on the same data; the
ratios are printed with the agreement on clean pixels (median |difference| / err). Every
fitter's process runs without numpy's transparent huge-page advice, as calpipe's steps do
(``calpipe.memory``).
stcal's likelihood fit is measured on a band of rows and scaled when the full frame
would take too long (said in the output). Timings on a shared machine are noisy.

    python benchmarks/ramp_fit.py [--size 4096] [--repeat 3] [--nresultants 6 12]
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FRAME_TIME = 3.04
READ_NOISE = 6.0
GAIN = 2.0
SATURATION = 60000.0
READ_PATTERNS = {
    6: [[1], [2, 3], [4, 5, 6, 7], [8], [9, 10, 11, 12, 13, 14], [15, 16]],
    12: [[1], [2], [3, 4], [5, 6, 7], [8], [9, 10], [11, 12, 13, 14], [15], [16, 17],
         [18, 19, 20], [21], [22, 23, 24, 25]],
}


def _rss(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def build_cube(size, pattern, seed=0):
    """Resultants (n, size, size) float32 DN, group DQ, truth rate and CR mask."""
    rng = np.random.default_rng(seed)
    n = len(pattern)
    flux = rng.uniform(0.5, 5.0, (size, size)).astype(np.float32)
    nstars = size * size // 2000
    ys, xs = rng.integers(0, size, nstars), rng.integers(0, size, nstars)
    peak = 10 ** rng.uniform(0, 4, nstars)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            np.add.at(flux, ((ys + dy) % size, (xs + dx) % size),
                      (peak * np.exp(-(dx * dx + dy * dy) / 2.0)).astype(np.float32))
    nread = pattern[-1][-1]
    cr = rng.random((size, size)) < 0.01
    cr_read = np.where(cr, rng.integers(1, nread + 1, (size, size)), 0)
    cr_e = (10 ** rng.uniform(2, 4.5, (size, size))).astype(np.float32)
    read_of = {k: i for i, reads in enumerate(pattern) for k in reads}
    res = np.zeros((n, size, size), np.float32)
    electrons = np.zeros((size, size), np.float32)
    rate = flux * np.float32(GAIN * FRAME_TIME)
    for k in range(1, nread + 1):
        electrons += rng.poisson(rate).astype(np.float32)
        electrons[cr_read == k] += cr_e[cr_read == k]
        if k in read_of:
            i = read_of[k]
            res[i] += electrons + rng.normal(0, READ_NOISE * GAIN, (size, size)).astype(np.float32)
    for i, reads in enumerate(pattern):
        res[i] /= np.float32(len(reads) * GAIN)
    gdq = np.zeros(res.shape, np.uint8)
    sat = np.maximum.accumulate(res >= SATURATION, axis=0)
    gdq[sat] = 2
    return res, gdq, flux, cr


def _reset_peak():
    # Linux: writing 5 to clear_refs resets VmHWM to the current RSS.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _time_it(fn, repeat):
    times = []
    out = None
    _reset_peak()
    for _ in range(repeat):
        out = None  # drop the previous result so that the peak holds one set of outputs
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    _time_it.peak = _rss("VmHWM")
    return float(np.median(times)), out


def worker(args):
    """One measurement in this process; prints a JSON line."""
    res = np.load(args.cube)
    gdq = np.load(args.gdq)
    pattern = json.loads(args.pattern)
    n, ny, nx = res.shape
    rn = np.full((ny, nx), READ_NOISE, np.float32)
    gain = np.full((ny, nx), GAIN, np.float32)
    out = {"algorithm": args.worker}
    base = _rss("VmRSS")
    if args.worker in ("likely", "optimal"):
        t0 = time.perf_counter()
        from calpipe.kernels.ramp import fit_ramps

        small = fit_ramps(res[:, :2, :8], gdq[:, :2, :8], rn[:2, :8], gain[:2, :8], pattern,
                          FRAME_TIME, algorithm=args.worker)
        out["first_call_s"] = time.perf_counter() - t0
        assert small.slope.shape == (2, 8)
        base = _rss("VmRSS")
        out["time_s"], fit = _time_it(lambda: fit_ramps(res, gdq, rn, gain, pattern, FRAME_TIME,
                                                          algorithm=args.worker), args.repeat)
        np.save(args.out, np.stack([fit.slope, fit.err]))
        np.save(args.out.replace(".npy", "_dq.npy"), fit.dq)
    elif args.worker == "stcal-optimal":
        from stcal.ramp_fitting.ols_cas22_fit import fit_ramps_casertano

        def run():
            # stcal works in electrons: the conversion is part of its cost.
            o = fit_ramps_casertano(res * np.float32(GAIN), gdq.astype(np.int32), READ_NOISE * GAIN,
                                    FRAME_TIME, pattern, use_jump=True)
            return o

        out["time_s"], o = _time_it(run, args.repeat)
        np.save(args.out, np.stack([o.parameters[..., 1] / GAIN, np.sqrt(o.variances[..., 2]) / GAIN]))
    elif args.worker == "stcal-likely":
        sys.path.insert(0, str(Path(__file__).parent))
        from ramp_accuracy import stcal_likely

        rows = min(ny, args.stcal_rows)
        out["rows"] = rows
        out["time_s"], o = _time_it(
            lambda: stcal_likely(res[:, :rows], READ_NOISE, GAIN, pattern, FRAME_TIME), 1)
        out["time_s"] *= ny / rows
        full = np.zeros((2, ny, nx), np.float32)
        full[:, :rows] = np.stack([o[0], o[1]])
        np.save(args.out, full)
    out["peak_rss"] = _time_it.peak  # taken before the results are saved
    out["base_rss"] = base
    out["input_bytes"] = res.nbytes + gdq.nbytes
    print(json.dumps(out))


def run_worker(algorithm, files, pattern, repeat, extra_env=None, stcal_rows=256):
    # The fits run as the ramp_fit step runs them: without numpy's huge-page advice (see
    # calpipe.memory), for every fitter alike.
    env = dict(os.environ, **{"NUMPY_MADVISE_HUGEPAGE": "0", **(extra_env or {})})
    out = str(Path(files["dir"]) / f"out_{algorithm}.npy")
    cmd = [sys.executable, __file__, "--worker", algorithm, "--cube", files["cube"], "--gdq", files["gdq"],
           "--pattern", json.dumps(pattern), "--repeat", str(repeat), "--out", out,
           "--stcal-rows", str(stcal_rows)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{algorithm} failed:\n{p.stderr[-3000:]}")
    result = json.loads(p.stdout.strip().splitlines()[-1])
    result["out"] = out
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nresultants", type=int, nargs="+", default=[6, 12], choices=sorted(READ_PATTERNS))
    parser.add_argument("--stcal-rows", type=int, default=256,
                        help="rows of the stcal likelihood fit that are timed, then scaled")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--cube", help=argparse.SUPPRESS)
    parser.add_argument("--gdq", help=argparse.SUPPRESS)
    parser.add_argument("--pattern", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    try:
        import stcal  # noqa: F401

        have_stcal = True
    except ImportError:
        have_stcal = False
    print(f"{args.size}x{args.size} pixels, {os.cpu_count()} cores, repeat {args.repeat} "
          f"(median); stcal {'found' if have_stcal else 'not installed'}")
    for nres in args.nresultants:
        pattern = READ_PATTERNS[nres]
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res, gdq, truth, cr = build_cube(args.size, pattern)
            files = {"dir": tmp, "cube": str(Path(tmp) / "res.npy"), "gdq": str(Path(tmp) / "gdq.npy")}
            np.save(files["cube"], res)
            np.save(files["gdq"], gdq)
            clean = ~cr & ~(gdq.any(axis=0))
            del res, gdq
            print(f"\n== {nres} resultants {pattern}: cube built in {time.perf_counter() - t0:.0f} s")
            results = {}
            for alg in ("optimal", "likely"):
                with tempfile.TemporaryDirectory() as cache:
                    compile_run = run_worker(alg, files, pattern, 1, {"NUMBA_CACHE_DIR": cache})
                r = run_worker(alg, files, pattern, args.repeat)
                r["compile_s"] = compile_run["first_call_s"]
                results[alg] = r
            if have_stcal:
                results["stcal-optimal"] = run_worker("stcal-optimal", files, pattern, args.repeat)
                results["stcal-likely"] = run_worker("stcal-likely", files, pattern, 1,
                                                     stcal_rows=args.stcal_rows)
            npix = args.size**2
            print(f"{'algorithm':>14} {'time s':>8} {'Mpix/s':>8} {'compile s':>9} "
                  f"{'peak GB':>8} {'input GB':>8} {'peak-base GB':>12}")
            for alg, r in results.items():
                comp = f"{r['compile_s']:9.1f}" if "compile_s" in r else f"{'-':>9}"
                note = f"  (timed on {r['rows']} rows, scaled)" if "rows" in r else ""
                print(f"{alg:>14} {r['time_s']:8.2f} {npix / r['time_s'] / 1e6:8.2f} {comp} "
                      f"{r['peak_rss'] / 1e9:8.2f} {r['input_bytes'] / 1e9:8.2f} "
                      f"{(r['peak_rss'] - r['base_rss']) / 1e9:12.2f}{note}")
            outputs = 4 * 4 * npix + 4 * npix
            for alg in ("optimal", "likely"):
                r = results[alg]
                budget = 1.25 * (r["input_bytes"] + outputs)
                used = r["peak_rss"] - r["base_rss"] + r["input_bytes"]
                print(f"{alg}: input + fit memory {used / 1e9:.2f} GB; "
                      f"budget input + outputs + 25% = {budget / 1e9:.2f} GB")
            if have_stcal:
                for ours, theirs in (("optimal", "stcal-optimal"), ("likely", "stcal-likely")):
                    a = np.load(results[ours]["out"])
                    b = np.load(results[theirs]["out"])
                    rows = results[theirs].get("rows", args.size)
                    sel = clean[:rows] & (a[1, :rows] > 0) & np.isfinite(b[0, :rows])
                    diff = np.abs(a[0, :rows] - b[0, :rows])[sel] / a[1, :rows][sel]
                    speed = results[theirs]["time_s"] / results[ours]["time_s"]
                    print(f"{ours} vs {theirs}: {speed:.1f}x faster; clean pixels: median "
                          f"|difference|/err {np.median(diff):.2e}, 99th percentile "
                          f"{np.percentile(diff, 99):.2e}")
            a = np.load(results["likely"]["out"])
            z = (a[0] - truth)[clean] / a[1][clean]
            print(f"likely, clean pixels vs truth: median z {np.median(z):+.4f}, "
                  f"robust std {1.4826 * np.median(np.abs(z - np.median(z))):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
