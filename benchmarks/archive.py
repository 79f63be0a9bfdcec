"""The product archive: a query over many products, and an add of a folder of products.

    python benchmarks/archive.py [--products 10000] [--add 1000] [--db URL]

1. ``find``: an archive database holding ``--products`` roots (synthetic metadata: an
   uncal, a cal and a catalog each, 8 detectors, a year of start times) is queried in
   process for one detector over one month, the median of 20 queries; the baseline is the
   same query after the archive's indexes are dropped (a full scan), measured in the same run.
2. ``add``: ``--add`` small calibrated images (64x64, full metadata and provenance) in one
   folder are archived by one ``Archive.add`` (one transaction, previews made separately),
   with the ratio to copying the same files with ``shutil.copyfile`` (the I/O floor).
"""

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from astropy.time import Time, TimeDelta

from calpipe import datamodels as dm
from calpipe.archive import Archive
from calpipe.archive import db as D

DETECTORS = [f"WFI{i:02d}" for i in range(1, 9)]
FILTERS = ["F062", "F087", "F106", "F129", "F158", "F184"]
START = Time("2027-01-01T00:00:00", scale="utc")


def exposure_meta(i, rng):
    start = (START + TimeDelta(rng.uniform(0, 365 * 86400), format="sec")).isot
    return {
        "telescope": "ROMAN",
        "instrument": {"name": "WFI", "detector": DETECTORS[i % 8], "optical_element": FILTERS[(i // 8) % 6],
                       "detector_temperature": 95.0},
        "exposure": {"type": "WFI_IMAGE", "start_time": start, "nresultants": 6,
                     "read_pattern": [[1], [2, 3], [4, 5, 6], [7, 8, 9], [10, 11], [12]], "frame_time": 3.04,
                     "exposure_time": 36.48},
        "observation": {"program": 1 + i // 5000, "observation": 1 + (i // 40) % 125, "visit": 1,
                        "exposure": 1 + (i // 8) % 5},
        "wcsinfo": {"ra_ref": rng.uniform(0, 360), "dec_ref": rng.uniform(-80, 80), "v2_ref": 0.0,
                    "v3_ref": 0.0, "roll_ref": 0.0},
    }


def root_of(i, meta):
    o = meta["observation"]
    return f"cp{o['program']:05d}{o['observation']:03d}{o['visit']:03d}_{i:04d}_{meta['instrument']['detector'].lower()}"


def fill(archive, n, seed=1):
    """``n`` roots with an uncal, cal and catalog each, written straight into the tables."""
    rng = np.random.default_rng(seed)
    stamp = D.now()
    columns = archive.db.columns["cal"]
    roots, metas = [], []
    for i in range(n):
        meta = exposure_meta(i, rng)
        metas.append(meta)
        roots.append(dict(root=root_of(i, meta), program=f"{meta['observation']['program']:05d}",
                          observation=meta["observation"]["observation"], visit=1,
                          exposure=meta["observation"]["exposure"], instrument="WFI",
                          detector=meta["instrument"]["detector"], optical_element=meta["instrument"]["optical_element"],
                          exp_type="WFI_IMAGE", start_time=meta["exposure"]["start_time"], end_time=None,
                          s_region=None, first_ingest=stamp, last_ingest=stamp))
    with archive.db.transaction() as conn:
        conn.execute(D.roots.insert(), roots)
        ids = dict(conn.execute(sa.select(D.roots.c.root, D.roots.c.id)).all())
        rows = [dict(root_id=ids[r["root"]], file_type=t, version=1,
                     path=f"{r['program']}/{r['root']}/v01/{r['root']}_{t}.{'ecsv' if t == 'cat' else 'asdf'}",
                     size=1, checksum="sha256:" + "0" * 64, created=stamp, is_default=True, is_last=True)
                for r in roots for t in ("uncal", "cal", "cat")]
        conn.execute(D.datasets.insert(), rows)
        cal_ids = dict(conn.execute(sa.select(D.datasets.c.root_id, D.datasets.c.id)
                                    .where(D.datasets.c.file_type == "cal")).all())
        conn.execute(archive.db.meta_tables["cal"].insert(), [
            dict(dataset_id=cal_ids[ids[r["root"]]], **{c.name: c.value_in(m) for c in columns})
            for r, m in zip(roots, metas)])


def time_find(archive, repeat=20):
    times, found = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        found = len(archive.find(detector="WFI03", start="2027-03-01", stop="2027-03-31", file_type="cal"))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), found


def write_products(folder, n, seed=2):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        meta = exposure_meta(i, rng)
        meta.update(ref_file={"dark": "calpipe_wfi01_dark.asdf"}, cal_step={"ramp_fit": "COMPLETE"},
                    resources={"ramp_fit": {"wall_seconds": 1.0, "peak_rss_mb": 500.0}},
                    provenance={"calpipe_version": "0.1.0", "parameters": {"ref_select": "before"}, "inputs": {}})
        data = rng.normal(1.0, 0.1, (64, 64)).astype(np.float32)
        zeros = np.zeros((64, 64), np.float32)
        meta["model_type"] = "ImageModel"
        dm.write_tree(folder / f"{root_of(i, meta)}_cal.asdf", dict(
            meta=meta, data=data, dq=np.zeros((64, 64), np.uint32), err=zeros + 0.1, var_poisson=zeros,
            var_rnoise=zeros))


def drop_archive_tables(url):
    """Empty a server database of the archive's tables (a SQLite file goes with its folder)."""
    if not url:
        return
    engine = sa.create_engine(url)
    tables = sa.MetaData()
    tables.reflect(engine, only=lambda name, _: name in D.metadata.tables or name.startswith("meta_"))
    tables.drop_all(engine)
    engine.dispose()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10000)
    parser.add_argument("--add", type=int, default=1000)
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in the archive folder); "
                        "its archive tables are dropped before and after")
    args = parser.parse_args()
    drop_archive_tables(args.db)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with Archive(tmp / "find", args.db) as archive:
            t0 = time.perf_counter()
            fill(archive, args.products)
            print(f"filled {args.products} products ({3 * args.products} files) in {time.perf_counter() - t0:.1f} s")
            indexed, found = time_find(archive)
            with archive.db.transaction() as conn:
                for index in ("ix_roots_detector_start", "ix_roots_start"):
                    conn.execute(sa.text(f"DROP INDEX {index}"))
            scanned, _ = time_find(archive)
        print(f"find (detector, one month, cal): {found} rows, median {indexed * 1e3:.1f} ms "
              f"(target < 100 ms); without indexes {scanned * 1e3:.1f} ms, ratio {scanned / indexed:.1f}x")
        drop_archive_tables(args.db)

        folder = tmp / "products"
        t0 = time.perf_counter()
        write_products(folder, args.add)
        print(f"wrote {args.add} products in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        for path in folder.iterdir():
            shutil.copyfile(path, tmp / f"copy-{path.name}")
        copied = time.perf_counter() - t0
        with Archive(tmp / "add", args.db) as archive:
            t0 = time.perf_counter()
            result = archive.add([folder], previews=False)
            added = time.perf_counter() - t0
        drop_archive_tables(args.db)
        assert len(result.added) == args.add and not result.errors, result.errors[:3]
        print(f"add of {args.add} products (one transaction, no previews): {added:.1f} s (target < 60 s), "
              f"{added / args.add * 1e3:.1f} ms each; copying the files alone {copied:.2f} s, ratio {added / copied:.0f}x")


if __name__ == "__main__":
    main()
