"""Operations-report rows and database snapshots shared by the training tests."""

import csv

import sqlalchemy as sa

from calpipe.training import db as D

L1_COLUMNS = ["Dataset", "DagNodeName", "ImageSize", "PROGRAM", "OBSERVTN", "TARGNAME", "INSTRUME", "DETECTOR",
              "FILTER", "PUPIL", "EXP_TYPE", "SUBARRAY", "RA_REF", "DEC_REF", "TARG_RA", "TARG_DEC"]


def l1_row(name, obs, filt, det="NRCA1", ra=10.0):
    return {"Dataset": name, "DagNodeName": "LEVEL_1", "ImageSize": "2048", "PROGRAM": "01234", "OBSERVTN": obs,
            "TARGNAME": "NGC-1", "INSTRUME": "NIRCAM", "DETECTOR": det, "FILTER": filt, "PUPIL": "CLEAR",
            "EXP_TYPE": "NRC_IMAGE", "SUBARRAY": "FULL", "RA_REF": ra, "DEC_REF": "-5.0", "TARG_RA": "10.0",
            "TARG_DEC": "-5.0"}


def l3_row(name, size):
    return {"Dataset": name, "DagNodeName": "LEVEL_3", "ImageSize": size}


def write_report(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=L1_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def products_of(n):
    """n products (observations 1..n), two exposures each, and their Level-3 names."""
    l1, names = [], []
    for i in range(1, n + 1):
        for j in (1, 2):
            l1.append(l1_row(f"jw01234{i:03d}001_02101_0000{j}_nrca1", f"{i:03d}", "F200W", ra=10.0 + j * 1e-3))
        names.append(f"jw01234-o{i:03d}_t001_nircam_clear-f200w")
    return l1, names


def write_rows(path, rows):
    """A report with the union of the rows' columns (missing cells empty)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return path


def snapshot(database):
    """Every content table, without ids and timestamps (provenance runs excluded)."""
    out = {}
    with database.engine.connect() as conn:
        for t in (D.exposures, D.products, D.targets, D.training, D.set_aside, D.pending, D.encodings):
            cols = [c for c in t.c if c.name not in ("id",)]
            out[t.name] = sorted(tuple(r) for r in conn.execute(sa.select(*cols)).all())
    return out
