import csv
import math

import pytest
import sqlalchemy as sa

from calpipe.training import db as D
from calpipe.training import ingest as I

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


def snapshot(database):
    """Every content table, without ids and timestamps (provenance runs excluded)."""
    out = {}
    with database.engine.connect() as conn:
        for t in (D.exposures, D.products, D.training, D.pending, D.encodings):
            cols = [c for c in t.c if c.name not in ("id",)]
            out[t.name] = sorted(tuple(r) for r in conn.execute(sa.select(*cols)).all())
    return out


def training_rows(database):
    with database.engine.connect() as conn:
        return conn.execute(sa.select(D.training.c.product, D.training.c.image_size_kb,
                                      D.training.c.n_reprocessed).order_by(D.training.c.product)).all()


def test_three_days_of_reports(db, tmp_path):
    l1, names = products_of(4)
    day1 = write_report(tmp_path / "day1.csv", l1 + [l3_row(names[0], 1000), l3_row(names[1], 1100)])
    day2 = write_report(tmp_path / "day2.csv", [l3_row(names[2], 1200), l3_row(names[3], 1300)])

    s1 = I.ingest(db, *I.read_report(day1), source="day1")
    assert (s1.n_exposures, s1.n_products, s1.n_trained) == (8, 4, 2)
    assert db.counts()["pending_product"] == 2

    s2 = I.ingest(db, *I.read_report(day2), source="day2")
    assert (s2.n_exposures, s2.n_products, s2.n_trained, s2.n_pending) == (0, 0, 2, 0)
    after_day2 = snapshot(db)

    s3 = I.ingest(db, *I.read_report(day1), source="day1 again")
    assert (s3.n_exposures, s3.n_products, s3.n_trained, s3.n_reprocessed) == (0, 0, 0, 0)
    assert snapshot(db) == after_day2
    counts = db.counts()
    assert counts["training"] == 4 and counts["products"] == 4 and counts["pending"] == 0
    assert training_rows(db) == [(names[0], 1000.0, 0), (names[1], 1100.0, 0), (names[2], 1200.0, 0),
                                 (names[3], 1300.0, 0)]
    assert counts["ingest_runs"] == 3


def test_level3_before_level1_waits_then_matches(db, tmp_path):
    l1, names = products_of(1)
    I.ingest(db, *I.read_report(write_report(tmp_path / "a.csv", [l3_row(names[0], 500)])))
    assert db.counts()["pending_cost"] == 1 and db.counts()["training"] == 0
    I.ingest(db, *I.read_report(write_report(tmp_path / "b.csv", l1)))
    assert db.counts()["pending"] == 0
    assert training_rows(db) == [(names[0], 500.0, 0)]


def test_reprocessing_updates_the_training_row(db, tmp_path):
    l1, names = products_of(1)
    I.ingest(db, *I.read_report(write_report(tmp_path / "a.csv", l1 + [l3_row(names[0], 500)])))
    s = I.ingest(db, *I.read_report(write_report(tmp_path / "b.csv", [l3_row(names[0], 650)])))
    assert s.n_reprocessed == 1 and s.n_trained == 0
    assert training_rows(db) == [(names[0], 650.0, 1)]


def test_members_arriving_later_update_features(db, tmp_path):
    l1, names = products_of(1)
    I.ingest(db, *I.read_report(write_report(tmp_path / "a.csv", l1[:1])))
    s = I.ingest(db, *I.read_report(write_report(tmp_path / "b.csv", l1[1:])))
    assert s.n_products == 1
    with db.engine.connect() as conn:
        feats = D.json.loads(conn.execute(sa.select(D.products.c.features)).scalar())
    assert feats["n_exposures"] == 2 and feats["input_size_kb"] == 4096.0
    # Two pointings 2 mas apart in RA at dec -5: each 1 mas (cos dec) from the fiducial.
    expected = 1e-3 * 3600 * math.cos(math.radians(5)) / 2 / 0.031
    assert feats["max_offset"] == pytest.approx(expected, rel=1e-6)
    assert feats["sigma_offset"] == pytest.approx(0.0, abs=1e-6)


def test_failure_midway_leaves_database_unchanged(db, tmp_path, monkeypatch):
    l1, names = products_of(3)
    I.ingest(db, *I.read_report(write_report(tmp_path / "a.csv", l1[:2] + [l3_row(names[0], 1)])))
    before = snapshot(db)
    runs_before = db.counts()["ingest_runs"]
    enc_before = db.get_meta("encoding_version")

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    # Fail after exposures, products and encodings were written, while matching costs.
    monkeypatch.setattr(I, "_match", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        I.ingest(db, *I.read_report(write_report(tmp_path / "b.csv", l1 + [l3_row(names[2], 3)])))
    assert snapshot(db) == before
    assert db.counts()["ingest_runs"] == runs_before
    assert db.get_meta("encoding_version") == enc_before


def test_new_category_gets_a_recorded_code_and_bumps_version(db, tmp_path):
    l1, _ = products_of(1)
    I.ingest(db, *I.read_report(write_report(tmp_path / "a.csv", l1)))
    v1 = int(db.get_meta("encoding_version"))
    table1 = db.encoding_table()
    assert table1["filter"] == {"F200W": 1}
    row = l1_row("jw01234009001_02101_00001_nrca1", "009", "F444W")
    I.ingest(db, *I.read_report(write_report(tmp_path / "b.csv", [row])))
    assert int(db.get_meta("encoding_version")) == v1 + 1
    table2 = db.encoding_table()
    assert table2["filter"] == {"F200W": 1, "F444W": 2}
    for feature, codes in table1.items():  # old codes never change
        assert all(table2[feature][v] == c for v, c in codes.items())
    with db.engine.connect() as conn:
        version = conn.execute(sa.select(D.encodings.c.version).where(D.encodings.c.value == "F444W")).scalar()
    assert version == v1 + 1


def test_report_errors(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("Dataset,ImageSize\nx,1\n")
    with pytest.raises(I.IngestError, match="lacks column.*DagNodeName"):
        I.read_report(p)
    with pytest.raises(I.IngestError, match="cannot read report"):
        I.read_report(tmp_path / "none.csv")
