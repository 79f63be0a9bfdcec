"""calpipe batch against strun on one association, and Dask's cost per task.

    python benchmarks/batch.py [--size 1024] [--members 18] [--nresultants 6] [--workers 1,2]
                               [--tiny 200] [--workdir DIR]

Simulates an association of ``--members`` dithered exposures (once; reused if present),
then in the same run:

1. ``strun exposure_pipeline asn.json`` (the baseline: one process, members one after
   another, all calibrated members kept until tweakreg);
2. ``calpipe batch run asn.json --workers N`` for each N of ``--workers`` (fresh output folders),

and prints for each the wall time of the whole command (start-up included), exposures per
minute and the peak resident memory per process (strun) or per worker (the largest peak any
task recorded, and the largest of each kind of task: member calibration, an association's
fit, a member's alignment), with ratios against strun. Then the scheduling overhead: ``--tiny`` no-op
tasks submitted with a memory reservation to a 2-worker LocalCluster the way batch submits
members, and the state database's bookkeeping for as many tasks.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil


def peak_rss_mb(process):
    """Run until ``process`` exits, sampling the resident memory of it and its children."""
    peaks = {}
    ps = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            for p in [ps, *ps.children(recursive=True)]:
                peaks[p.pid] = max(peaks.get(p.pid, 0), p.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    return peaks


def timed(command, env=None):
    t0 = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    stderr = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read()), daemon=True)
    reader.start()
    peaks = peak_rss_mb(process)
    reader.join()
    wall = time.perf_counter() - t0
    if process.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{''.join(stderr)[-3000:]}")
    return wall, max(peaks.values()) / 2**20


KINDS = {"member": "member", "align": "fit", "apply": "alignment"}


def task_peaks(out):
    """The largest peak (MB) each kind of task recorded in a batch output folder."""
    from calpipe.batch.runner import status

    peaks = {}
    for row in status(out)["tasks"]:
        kind = KINDS.get(row["kind"], row["kind"])
        peaks[kind] = max(peaks.get(kind, 0.0), row["peak_mb"] or 0.0)
    return peaks


def tiny_tasks(n):
    """Seconds per task of n no-op tasks with a MEMORY reservation on a 2-worker LocalCluster."""
    from distributed import Client, LocalCluster, as_completed

    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                      resources={"MEMORY": 1000}) as cluster, Client(cluster) as client:
        client.submit(int, 0).result()  # workers up
        t0 = time.perf_counter()
        futures = [client.submit(int, i, resources={"MEMORY": 10}, pure=False) for i in range(n)]
        for future in as_completed(futures):
            future.result()
        return (time.perf_counter() - t0) / n


def bookkeeping(n, folder):
    """Seconds per task of the state database's writes for one task (plan, start, attempt, done)."""
    from calpipe.batch.state import StateDB

    db = StateDB(folder)
    t0 = time.perf_counter()
    for i in range(n):
        key = f"member:{i}"
        db.upsert(key, kind="member", association="a", name=str(i), inputs=[{"path": key}], params={"p": 1},
                  fingerprint="f", state="pending", attempts=0)
        db.upsert(key, state="running", attempts=1, reservation_mb=500.0)
        db.add_attempt(key, 1, 500.0, "done", wall_s=1.0, peak_mb=400.0)
        db.upsert(key, state="done", wall_s=1.0, peak_mb=400.0, products=[key])
        db.get(key)
    db.close()
    return (time.perf_counter() - t0) / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--members", type=int, default=18)
    parser.add_argument("--nresultants", type=int, default=6)
    parser.add_argument("--workers", default="1,2", help="worker counts of the batch runs, comma-separated")
    parser.add_argument("--tiny", type=int, default=200, help="no-op tasks for the overhead figure")
    parser.add_argument("--workdir", default="bench-batch")
    args = parser.parse_args()

    from calpipe.simulate import simulate_dithered

    work = Path(args.workdir).resolve()
    sim_dir = work / f"sim-{args.size}-{args.members}x{args.nresultants}"
    asns = sorted(sim_dir.glob("*_asn.json"))
    if not asns:
        print(f"simulating {args.members} exposures of {args.size}x{args.size} in {sim_dir} ...", flush=True)
        simulate_dithered(sim_dir, args.members, size=args.size, nresultants=args.nresultants, seed=7)
        asns = sorted(sim_dir.glob("*_asn.json"))
    asn, refs = asns[0], sim_dir / "refs"
    bindir = Path(sys.executable).parent
    env = {**os.environ, "CALPIPE_REFS": str(refs)}
    print(f"{args.members} members of {args.size}x{args.size}, {args.nresultants} resultants; "
          f"{os.cpu_count()} cores", flush=True)

    results = {}
    out = work / "strun-out"
    wall, peak = timed([str(bindir / "strun"), "exposure_pipeline", str(asn), "--output-dir", str(out),
                        "--ref-store", str(refs)], env)
    results["strun"] = {"wall_s": wall, "peak_mb": peak}
    for workers in (int(n) for n in args.workers.split(",")):
        out = work / f"batch-{workers}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        wall, _ = timed([str(bindir / "calpipe"), "batch", "run", str(asn), "--output-dir", str(out),
                         "--workers", str(workers), "--ref-store", str(refs)], env)
        peaks = task_peaks(out)
        results[f"batch {workers} worker(s)"] = {"wall_s": wall, "peak_mb": max(peaks.values()), "task_peaks_mb": peaks}

    base = results["strun"]["wall_s"]
    print(f"{'run':<20} {'wall s':>8} {'exp/min':>8} {'speed-up':>9} {'peak MB':>8}   largest peak per task kind (MB)")
    for name, r in results.items():
        print(f"{name:<20} {r['wall_s']:8.1f} {args.members / r['wall_s'] * 60:8.1f} {base / r['wall_s']:8.2f}x "
              f"{r['peak_mb']:8.0f}   " + (", ".join(f"{k} {v:.0f}" for k, v in r["task_peaks_mb"].items())
                                            if "task_peaks_mb" in r else "(one process)"))
    per_task = tiny_tasks(args.tiny)
    per_book = bookkeeping(args.tiny, work / "bookkeeping")
    print(f"Dask scheduling overhead: {per_task * 1e3:.1f} ms per task ({args.tiny} no-op tasks, 2 workers)")
    print(f"state database bookkeeping: {per_book * 1e3:.1f} ms per task")
    (work / "results.json").write_text(json.dumps(
        {"size": args.size, "members": args.members, "nresultants": args.nresultants, "runs": results,
         "dask_ms_per_task": per_task * 1e3, "bookkeeping_ms_per_task": per_book * 1e3}, indent=1))


if __name__ == "__main__":
    main()
