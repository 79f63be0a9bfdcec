"""Throughput of scrub (grouping + features) and ingest (database) on synthetic metadata.

    python benchmarks/training_ingest.py [--exposures 100000] [--per-product 5] [--db URL]

Runs a fifth of the size first and then the full size, and prints each throughput with the
ratio of time to the smaller run: linear cost gives a ratio near the size ratio (5).
"""

import argparse
import random
import tempfile
import time
from pathlib import Path

from calpipe.associations.pool import group_products, normalise
from calpipe.training import db as D
from calpipe.training import ingest as I
from calpipe.training.scrub import product_features

FILTERS = ["F070W", "F090W", "F115W", "F150W", "F200W", "F277W", "F356W", "F444W"]


def synthetic(n_exposures, per_product, seed=1):
    """Exposures of NIRCam imaging products: 100 products per program, ``per_product`` each."""
    rng = random.Random(seed)
    out, costs = [], []
    n_products = n_exposures // per_product
    for p in range(n_products):
        program, obs = 1000 + p // 100, p % 100 + 1
        filt = FILTERS[p % len(FILTERS)]
        ra, dec = rng.uniform(0, 360), rng.uniform(-80, 80)
        for k in range(per_product):
            out.append(normalise({
                "FILENAME": f"jw{program:05d}{obs:03d}001_02101_{k:05d}_nrca{k % 4 + 1}",
                "PROGRAM": program, "OBSERVTN": obs, "TARGNAME": "FIELD", "INSTRUME": "NIRCAM",
                "DETECTOR": f"NRCA{k % 4 + 1}", "EXP_TYPE": "NRC_IMAGE", "FILTER": filt, "PUPIL": "CLEAR",
                "SUBARRAY": "FULL", "RA_REF": ra + rng.gauss(0, 1e-3), "DEC_REF": dec + rng.gauss(0, 1e-3),
                "TARG_RA": ra, "TARG_DEC": dec, "NEXPOSUR": per_product, "GS_MAG": rng.uniform(10, 18),
            }))
        costs.append(I.Cost(f"jw{program:05d}-o{obs:03d}_t001_nircam_clear-{filt.lower()}",
                            image_size_kb=rng.uniform(1e5, 1e6), source="bench"))
    return out, costs


def measure(n_exposures, per_product, url):
    exps, costs = synthetic(n_exposures, per_product)
    t0 = time.perf_counter()
    prods = group_products(exps)
    for p in prods:
        product_features(p.exposures)
    t_scrub = time.perf_counter() - t0
    with D.TrainingDB(url) as database:
        t0 = time.perf_counter()
        s = I.ingest(database, exps, costs, source="bench")
        t_ingest = time.perf_counter() - t0
        assert s.n_trained == len(prods) == len(costs) and s.n_pending == 0, s
    return len(exps), len(prods), t_scrub, t_ingest


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exposures", type=int, default=100_000)
    ap.add_argument("--per-product", type=int, default=5)
    ap.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file per size)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for frac in (5, 1):
            url = args.db or f"sqlite:///{Path(tmp) / f'bench{frac}.db'}"
            results.append(measure(args.exposures // frac, args.per_product, url))
    (n0, p0, s0, i0), (n1, p1, s1, i1) = results
    for n, p, s, i in results:
        print(f"{n:7d} exposures {p:6d} products: scrub {s:7.2f} s ({n / s:8.0f} exp/s), "
              f"ingest {i:7.2f} s ({n / i:8.0f} exp/s)")
    print(f"size ratio {n1 / n0:.1f}: scrub time ratio {s1 / s0:.2f}, ingest time ratio {i1 / i0:.2f}")


if __name__ == "__main__":
    main()
