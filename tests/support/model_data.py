"""A small synthetic training database whose costs follow a known law.

Each product has k members (1..6) of one exposure size s (kB) and n resultants. Its peak
memory is ``250 + 0.02 s (1 + 0.5 k)`` MB and its wall time ``3 + 4e-4 s k n / 6`` s, each
times a log-normal scatter (3% and 8%). Memory is therefore far from proportional to the
input size (k s): the naive baseline is wrong by design and the model can learn the law.
"""

import math
import random

from calpipe.associations.pool import group_products, normalise
from calpipe.training import ingest as I

N_PRODUCTS = 160


def peak_law(size_kb, k):
    return 250.0 + 0.02 * size_kb * (1 + 0.5 * k)


def wall_law(size_kb, k, nres):
    return 3.0 + 4e-4 * size_kb * k * nres / 6


def product_exposures(program, k, size_kb, nres, filt="F200W"):
    """Normalised Level-1 records of one NIRCam imaging product of ``k`` members."""
    return [normalise({
        "FILENAME": f"jw{program:05d}001001_02101_{m + 1:05d}_nrca1", "PROGRAM": program, "OBSERVTN": 1,
        "TARGNAME": "FIELD", "INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "EXP_TYPE": "NRC_IMAGE",
        "FILTER": filt, "PUPIL": "CLEAR", "SUBARRAY": "FULL", "NRESULTANTS": nres, "NEXPOSUR": k,
        "RA_REF": 10.0 + 1e-4 * m, "DEC_REF": 20.0, "TARG_RA": 10.0, "TARG_DEC": 20.0,
        "DATE-OBS": "2026-01-01", "image_size_kb": size_kb,
    }) for m in range(k)]


def synthetic_products(n, seed=1, program0=1000):
    """``[(exposures, peak, wall, (size, k, nres))]`` drawn from the laws above."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(1, 6)
        size = math.exp(rng.uniform(math.log(2e3), math.log(2e5)))
        nres = rng.choice([3, 6, 12, 24])
        peak = peak_law(size, k) * math.exp(rng.gauss(0, 0.03))
        wall = wall_law(size, k, nres) * math.exp(rng.gauss(0, 0.08))
        out.append((product_exposures(program0 + i, k, size, nres), peak, wall, (size, k, nres)))
    return out


def fill(database, products):
    exposures, costs = [], []
    for exps, peak, wall, _ in products:
        (product,) = group_products(exps)
        exposures.extend(exps)
        costs.append(I.Cost(product.name, peak_memory_mb=peak, wall_seconds=wall, source="synthetic"))
    I.ingest(database, exposures, costs, source="synthetic")
