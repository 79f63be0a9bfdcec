"""A JWST-style operations report, as operations write them: rows with keys missing.

NIRCam imaging products of 1 to 8 exposures, one detector each (short or long
wavelength), full frame or a subarray (SUBSIZE1 x SUBSIZE2), 2 to 10 groups. Level-1 rows
carry the header keywords; some lack GS_MAG or TARG_RA/TARG_DEC, the exposures of some
products lack PUPIL; one has no INSTRUME and one is a LEVEL_2B row (neither usable). Level-3
rows carry the product's ImageSize and the job's ``PeakMemoryMB`` and ``WallSeconds``,
except a few whose memory cell is empty.

The costs follow a known law (these are not measured runs): peak memory
``400 + 1.5e-4 p g + 4e-5 P`` MB (p the pixels of one readout, g the groups, P the pixels of
all members) and wall time ``20 + 2e-6 P g`` s, times log-normal scatter of 4% and 10%.
Memory is mostly a floor for small products and grows with one readout's size rather than
with the input size, so a model of the report's features can beat the size-proportional
baseline, as the measured runs do.
"""

import csv
import math
import random

from calpipe.associations.pool import group_products, normalise

SUBARRAYS = {"FULL": 2048, "SUB640": 640, "SUB320": 320, "SUB160": 160}
DETECTORS = ["NRCA1", "NRCA2", "NRCB3", "NRCB4", "NRCALONG", "NRCBLONG"]
FILTERS = {"NRCA1": "F150W", "NRCA2": "F200W", "NRCB3": "F115W", "NRCB4": "F090W",
           "NRCALONG": "F356W", "NRCBLONG": "F444W"}
COLUMNS = ["Dataset", "DagNodeName", "ImageSize", "PROGRAM", "OBSERVTN", "VISIT", "EXPOSURE", "TARGNAME",
           "TARG_RA", "TARG_DEC", "INSTRUME", "DETECTOR", "FILTER", "PUPIL", "EXP_TYPE", "SUBARRAY",
           "SUBSIZE1", "SUBSIZE2", "NGROUPS", "NEXPOSUR", "NUMDTHPT", "GS_MAG", "RA_REF", "DEC_REF",
           "DATE-OBS", "PeakMemoryMB", "WallSeconds"]


def peak_law(pixels, groups, all_pixels):
    return 400.0 + 1.5e-4 * pixels * groups + 4e-5 * all_pixels


def wall_law(all_pixels, groups):
    return 20.0 + 2e-6 * all_pixels * groups


def report_rows(n_products, seed=2):
    """``(rows, truth)``: the report's rows, and ``{product: (peak, wall) or None}`` per product."""
    rng = random.Random(seed)
    rows, truth = [], {}
    for i in range(n_products):
        program, obs = 3000 + i // 20, i % 20 + 1
        det = rng.choice(DETECTORS)
        sub = rng.choice(list(SUBARRAYS))
        side, groups, k = SUBARRAYS[sub], rng.randint(2, 10), rng.randint(1, 8)
        ra, dec = 3.0 * (program - 2999), -30.0 + 0.01 * obs  # one target per program
        pupil = "" if rng.random() < 0.10 else "CLEAR"  # missing for a whole product (its optical path)
        l1 = []
        for m in range(k):
            row = {"Dataset": f"jw{program:05d}{obs:03d}001_02101_{m + 1:05d}_{det.lower()}",
                   "DagNodeName": "LEVEL_1", "ImageSize": f"{side * side * groups * 2 / 1024 + 30:.1f}",
                   "PROGRAM": f"{program:05d}", "OBSERVTN": f"{obs:03d}", "VISIT": "001", "EXPOSURE": m + 1,
                   "TARGNAME": f"FIELD-{program}", "TARG_RA": f"{ra:.6f}", "TARG_DEC": f"{dec:.6f}",
                   "INSTRUME": "NIRCAM", "DETECTOR": det, "FILTER": FILTERS[det], "PUPIL": pupil,
                   "EXP_TYPE": "NRC_IMAGE", "SUBARRAY": sub, "SUBSIZE1": side, "SUBSIZE2": side,
                   "NGROUPS": groups, "NEXPOSUR": k, "NUMDTHPT": k, "GS_MAG": f"{rng.uniform(10, 17):.2f}",
                   "RA_REF": f"{ra + 1e-4 * m:.7f}", "DEC_REF": f"{dec:.7f}", "DATE-OBS": "2026-03-01"}
            # Keys operations left out.
            if rng.random() < 0.15:
                row["GS_MAG"] = ""
            if rng.random() < 0.05:
                row["TARG_RA"] = row["TARG_DEC"] = ""
            l1.append(row)
        (product,) = group_products([normalise({**r, "expname": r["Dataset"]}) for r in l1])
        all_pixels = side * side * k
        peak = peak_law(side * side, groups, all_pixels) * math.exp(rng.gauss(0, 0.04))
        wall = wall_law(all_pixels, groups) * math.exp(rng.gauss(0, 0.10))
        known = rng.random() > 0.04
        truth[product.name] = (peak, wall) if known else None
        rows.extend(l1)
        rows.append({"Dataset": product.name, "DagNodeName": "CAL_LEVEL_3",
                     "ImageSize": f"{all_pixels * 4 / 1024:.1f}",
                     "PeakMemoryMB": f"{peak:.1f}" if known else "", "WallSeconds": f"{wall:.2f}"})
    rows.append({"Dataset": "jw09999001001_02101_00001_nrca1", "DagNodeName": "LEVEL_1", "ImageSize": "100",
                 "PROGRAM": "09999", "OBSERVTN": "001", "INSTRUME": "", "EXP_TYPE": "NRC_IMAGE",
                 "FILTER": "F200W"})  # no INSTRUME: cannot be named
    rows.append({"Dataset": "jw03000001001_02101_00001_nrca1", "DagNodeName": "LEVEL_2B", "ImageSize": "100"})
    return rows, truth


def write_report(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path
