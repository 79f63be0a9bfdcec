"""A training set for the resource model: real association runs, measured, ingested.

    python benchmarks/model_training_set.py --work DIR [--db URL] [--associations 200] [--seed 1]

Every association here is calibrated for real: `exposure_pipeline` runs over its members
(one process per run, forked from a parent that has imported calpipe, so each run starts
from the same resident memory without paying the import again), records its own peak
memory and wall time in every product's ``meta.resources``, and the training ingest reads
them back (:func:`calpipe.training.ingest.calpipe_costs`) into the database, exactly as
`strun training_ingest` would. Nothing is extrapolated or synthesised from a formula.

The plan varies detector size (256, 512, 1024, 2048 pixels), resultants (3 to 24), members
(1 to 6) and star density (1/8000 to 1/400 stars per pixel). To keep it inside a shared
2-core machine's budget, associations of one *configuration* (size, resultants, density)
share one simulated dithered set of up to six exposures: association j of a configuration
calibrates copies of its first k members, re-labelled with the association's own program
number so that the database sees one product per association. The pixels of those copies
are the same; the runs and their measurements are not. Large detectors get fewer and
shorter configurations (see :func:`plan`).

A run during which Numba compiles kernels (the first of a process with a cold on-disk
cache; it printed ``compiling kernels (first run only)``) is measured again: compiling
added up to 200 MB and minutes to the runs it fell in. Runs logged before this check
can be left out of a database with ``--drop-compiled LOG...`` (the association that
follows each notice in the logs).

The script is resumable: an association already trained in the database is skipped, so a
run cut short can be continued; ``--associations`` is the total planned. A CSV log of
every run (configuration, measured peak MB, wall s) is written to ``DIR/runs.csv``.
"""

import argparse
import csv
import os
import random
import shutil
import sys
import time
from pathlib import Path

import asdf

from calpipe.associations.asn import load_asn
from calpipe.associations.pool import load_pool, write_associations
from calpipe.training import db as D
from calpipe.training import ingest as I

SIZES = (256, 512, 1024, 2048)
SIZE_WEIGHTS = (0.36, 0.30, 0.24, 0.10)
RESULTANTS = (3, 4, 6, 8, 12, 16, 24)
DENSITIES = (1 / 8000, 1 / 3000, 1 / 1000, 1 / 400)
PER_CONFIG = 5  # associations per simulated set
PROGRAM0 = 2000  # association i is program PROGRAM0 + i


def plan(n_associations, seed=1):
    """``[(config, [(assoc_index, n_members), ...]), ...]``; deterministic in ``seed``.

    A configuration is ``(size, nresultants, star_density)``. A 2048 detector is planned with
    at most 12 resultants and 3 members, a 1024 one with at most 5 members, to bound the time.
    """
    rng = random.Random(seed)
    out, index = [], 0
    while index < n_associations:
        size = rng.choices(SIZES, SIZE_WEIGHTS)[0]
        nres = rng.choice([r for r in RESULTANTS if size < 2048 or r <= 12])
        density = rng.choice(DENSITIES)
        max_k = 3 if size == 2048 else 5 if size == 1024 else 6
        counts = rng.sample(range(1, max_k + 1), min(PER_CONFIG, max_k))
        assocs = []
        for k in counts:
            if index >= n_associations:
                break
            assocs.append((index, k))
            index += 1
        out.append(((size, nres, density), assocs))
    return out


def _in_child(func, *args):
    """Run ``func(*args)`` in a forked child; return its exit status (0 on success)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            func(*args)
            status = 0
        except BaseException as exc:  # the child reports and exits; the parent carries on
            print(f"  failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _simulate(out_dir, size, nres, density, nexp, seed):
    from calpipe.simulate import simulate_dithered

    simulate_dithered(out_dir, nexp, size=size, nresultants=nres, seed=seed, star_density=density)


def _mark_compiles(path):
    """Create ``path`` when Numba compiles in this process (a cold on-disk kernel cache)."""
    from numba.core import event

    class Listener(event.Listener):
        def on_start(self, ev):
            Path(path).touch()

        def on_end(self, ev):
            pass

    event.register("numba:compile", Listener())


def _calibrate(asn_path, out_dir, refs, refcat, marker=None):
    from calpipe.pipelines import ExposurePipeline

    if marker is not None:
        _mark_compiles(marker)
    ExposurePipeline.from_cmdline([
        "exposure_pipeline", str(asn_path), "--output-dir", str(out_dir), "--ref-store", str(refs),
        f"--steps.tweakreg.abs_refcat={refcat}", "--log-level", "ERROR",
    ])


def _relabel(copies, program):
    """Copy exposures ``[(src, dst), ...]`` with ``meta.observation.program`` set to ``program``."""
    for src, dst in copies:
        with asdf.open(src, lazy_load=False, memmap=False) as af:
            af.tree["meta"]["observation"]["program"] = int(program)
            af.write_to(dst)


def _trained(database):
    with database.engine.connect() as conn:
        return set(conn.execute(D.sa.select(D.training.c.product)).scalars())


def backfill_pixels(database, n_associations, seed=1):
    """Give this script's exposures stored without a readout size (by an older calpipe) the
    size their configuration was simulated at, and re-feature their products.

    Goes through the ordinary ingest (changed exposures regroup their programs); trained
    costs stay. Returns the number of exposures filled in.
    """
    import json

    size_of = {PROGRAM0 + i: size for (size, _, _), assocs in plan(n_associations, seed) for i, _ in assocs}
    with database.engine.connect() as conn:
        stored = [json.loads(t) for t in conn.execute(D.sa.select(D.exposures.c.metadata)).scalars()]
    filled = []
    for e in stored:
        if not e.get("npixels") and e["observatory"] == "calpipe" and e["program"] in size_of:
            filled.append({**e, "npixels": size_of[e["program"]] ** 2})
    if filled:
        I.ingest(database, filled, [], source="model_training_set backfill of readout sizes")
    return len(filled)


def drop_compiled(database, logs):
    """Remove the training rows of the associations that follow a compile notice in ``logs``."""
    import re

    from calpipe.compile_notice import MESSAGE

    products = []
    for log_path in logs:
        after_notice = False
        for line in Path(log_path).read_text().splitlines():
            if MESSAGE in line:
                after_notice = True
            m = re.match(r"\s+association (\d+):", line)
            if m and after_notice:
                products.append(f"cp{PROGRAM0 + int(m.group(1)):05d}-")
                after_notice = False
    dropped = []
    with database.transaction() as conn:
        for prefix in products:
            names = conn.execute(D.sa.select(D.training.c.product).where(
                D.training.c.product.like(prefix + "%"))).scalars().all()
            conn.execute(D.training.delete().where(D.training.c.product.in_(names)))
            dropped.extend(names)
    return dropped


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="working folder (simulations, runs.csv)")
    ap.add_argument("--db", default=None, help="training database (default: WORK/training.db)")
    ap.add_argument("--associations", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--part", default="0/1",
                    help="K/N: run only configurations K, K+N, K+2N, ... (N processes share the plan)")
    ap.add_argument("--backfill-pixels", action="store_true",
                    help="only fill in the readout size of exposures stored without one, then stop")
    ap.add_argument("--drop-compiled", nargs="+", metavar="LOG",
                    help="only remove the training rows of runs these logs show compiling, then stop")
    args = ap.parse_args(argv)
    if args.backfill_pixels or args.drop_compiled:
        with D.TrainingDB(args.db or Path(args.work) / "training.db") as database:
            if args.backfill_pixels:
                print(f"{backfill_pixels(database, args.associations, args.seed)} exposure(s) given their readout size")
            if args.drop_compiled:
                print(f"dropped the runs that compiled: {', '.join(drop_compiled(database, args.drop_compiled)) or 'none'}")
        return 0
    part, nparts = (int(v) for v in args.part.split("/"))
    # Imported once here, so that every forked run starts from the same resident memory.
    import calpipe.pipelines  # noqa: F401
    import calpipe.simulate  # noqa: F401

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    database = D.TrainingDB(args.db or work / "training.db")
    log_path = work / ("runs.csv" if nparts == 1 else f"runs-{part}of{nparts}.csv")
    new_log = not log_path.exists()
    log = open(log_path, "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["association", "product", "size", "nresultants", "star_density", "members",
                         "peak_memory_mb", "wall_seconds", "input_size_kb"])
    done_products = _trained(database)
    t_start = time.perf_counter()
    n_done = 0
    for ci, ((size, nres, density), assocs) in enumerate(plan(args.associations, args.seed)):
        if ci % nparts != part:
            continue
        sim_dir = work / f"config{ci:03d}"
        todo = [(i, k) for i, k in assocs if not any(p.startswith(f"cp{PROGRAM0 + i:05d}-") for p in done_products)]
        if not todo:
            continue
        nexp = max(k for _, k in todo)
        print(f"config {ci}: {size}x{size}, {nres} resultants, density 1/{1 / density:.0f}, "
              f"{len(todo)} association(s) of {[k for _, k in todo]} members", flush=True)
        if not sorted(sim_dir.glob("*_uncal.asdf")) or len(list(sim_dir.glob("*_uncal.asdf"))) < nexp:
            shutil.rmtree(sim_dir, ignore_errors=True)
            if _in_child(_simulate, sim_dir, size, nres, density, nexp, args.seed * 1000 + ci) != 0:
                print(f"  config {ci}: simulation failed; skipped", file=sys.stderr)
                continue
        originals = sorted(sim_dir.glob("*_uncal.asdf"))
        refcat = next(sim_dir.glob("*_refcat.ecsv"))
        for index, k in todo:
            run_dir = sim_dir / f"asn{index:03d}"
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir()
            program = PROGRAM0 + index
            copies = [(src, run_dir / src.name.replace("cp00001", f"cp{program:05d}")) for src in originals[:k]]
            if _in_child(_relabel, copies, program) != 0:
                continue
            exposures = load_pool(run_dir)
            (asn_path,) = write_associations(exposures, run_dir, "model-training")
            out = run_dir / "out"
            marker = run_dir / "compiled"
            status = _in_child(_calibrate, asn_path, out, sim_dir / "refs", refcat, marker)
            if status == 0 and marker.exists():
                # The run compiled kernels (a cold cache): its memory and time measure the
                # compiler, not the calibration. Measure again, now that the cache is warm.
                print(f"  association {index}: compiled kernels; measured again", flush=True)
                shutil.rmtree(out, ignore_errors=True)
                marker.unlink()
                status = _in_child(_calibrate, asn_path, out, sim_dir / "refs", refcat, marker)
            if status != 0:
                print(f"  association {index}: calibration failed; skipped", file=sys.stderr)
                shutil.rmtree(run_dir, ignore_errors=True)
                continue
            asn = load_asn(asn_path)
            costs = I.calpipe_costs(I.asn_products(asn), run_dir, out, source=f"model_training_set {index}")
            summary = I.ingest(database, exposures, costs, source=str(asn_path))
            for cost in costs:
                size_kb = sum(e["image_size_kb"] for e in exposures)
                writer.writerow([index, cost.product, size, nres, f"{density:.6g}", k,
                                 cost.peak_memory_mb, cost.wall_seconds, round(size_kb, 1)])
                print(f"  association {index}: {k} member(s) -> {cost.peak_memory_mb:.0f} MB, "
                      f"{cost.wall_seconds:.1f} s (trained +{summary.n_trained})", flush=True)
            log.flush()
            n_done += 1
            shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(sim_dir, ignore_errors=True)
    log.close()
    counts = database.counts()
    database.close()
    print(f"{n_done} association(s) run in {time.perf_counter() - t_start:.0f} s; "
          f"{counts['training']} trained product(s) in the database")
    return 0


if __name__ == "__main__":
    sys.exit(main())
