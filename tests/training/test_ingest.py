import math

import pytest
import sqlalchemy as sa
from support.report_rows import l1_row, l3_row, products_of, snapshot, write_report, write_rows

from calpipe.training import db as D
from calpipe.training import ingest as I


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


# -- operations data: no target numbers but in Level-3 product names --------------------------

STAGES = {"plain": ("LEVEL_1", "LEVEL_2B", "LEVEL_3"), "cal": ("CAL_LEVEL_1B", "CAL_LEVEL_2B", "CAL_LEVEL_3")}
NIRCAM = "jw01234-o001_t003_nircam_clear-f200w"
MIRI = "jw01234-o002_t003_miri_f770w"
IFU = "jw01234-o003_t004_nirspec_g395h-f290lp"
MOSAIC = "jw01234-c1000_t003_nircam_clear-f200w"


def exposure_row(stage, name, **kw):
    row = {"Dataset": name, "DagNodeName": stage, "ImageSize": "2048", "PROGRAM": "01234", "TARGNAME": "NGC-1",
           "TARG_RA": "10.0", "TARG_DEC": "-5.0", "SUBARRAY": "FULL"}
    row.update(kw)
    return row


def scenario_rows(stages):
    l1, l2, l3 = stages
    nircam = [exposure_row(l1, f"jw01234001001_02101_00001_nrca{d}", OBSERVTN="001", INSTRUME="NIRCAM",
                           DETECTOR=f"NRCA{d}", EXP_TYPE="NRC_IMAGE", FILTER="F200W", PUPIL="CLEAR") for d in (1, 2)]
    miri = [exposure_row(l1, "jw01234002001_02101_00001_mirimage", OBSERVTN="002", INSTRUME="MIRI",
                         DETECTOR="MIRIMAGE", EXP_TYPE="MIR_IMAGE", FILTER="F770W")]
    # The IFU target has no name: it is known by its position only.
    ifu = [exposure_row(l1, f"jw01234003001_03102_0000{k}_nrs1", OBSERVTN="003", INSTRUME="NIRSPEC", DETECTOR="NRS1",
                        EXP_TYPE="NRS_IFU", FILTER="F290LP", GRATING="G395H", TARGNAME="", TARG_RA="150.1",
                        TARG_DEC="2.2") for k in (1, 2)]
    level2 = {"Dataset": "jw01234001001_02101_00001_nrca1", "DagNodeName": l2, "ImageSize": "4096"}

    def cost(name, size):
        return {"Dataset": name, "DagNodeName": l3, "ImageSize": str(size)}

    day1 = nircam + miri + ifu[:1] + [level2, cost(NIRCAM, 5000)]
    day2 = [cost(MIRI, 3000), cost(NIRCAM, 5200), cost(MOSAIC, 9000)] + ifu[1:]
    day3 = [cost(IFU, 7000)]
    return day1, day2, day3


def product_rows(database):
    with database.engine.connect() as conn:
        return [(n, len(D.json.loads(m))) for n, m in conn.execute(
            sa.select(D.products.c.name, D.products.c.members).order_by(D.products.c.name))]


def target_rows(database):
    with database.engine.connect() as conn:
        return conn.execute(sa.select(D.targets.c.label, D.targets.c.number, D.targets.c.confirmed)
                            .order_by(D.targets.c.number)).all()


@pytest.mark.parametrize("stages", STAGES.values(), ids=STAGES.keys())
def test_three_days_of_operations_reports(db, tmp_path, stages, caplog):
    days = [write_rows(tmp_path / f"day{i}.csv", rows) for i, rows in enumerate(scenario_rows(stages), 1)]

    with caplog.at_level("WARNING", logger="calpipe.training.ingest"):
        I.ingest(db, *I.read_report(days[0]), source="day1")
    assert [r.getMessage() for r in caplog.records] == [
        f"{days[0]}: 1 of 6 rows not used: 1 with stage {stages[1]}"]
    # NIRCam trained as operations named it; MIRI shares its target, so it is already t003;
    # the IFU target has a provisional number until a report names it.
    assert training_rows(db) == [(NIRCAM, 5000.0, 0)]
    assert product_rows(db) == [(NIRCAM, 2), (MIRI, 1), ("jw01234-o003_t002_nirspec_g395h-f290lp", 1)]
    assert target_rows(db) == [("pos:150.100000,+2.200000", 2, 0), ("name:NGC-1", 3, 1)]

    s2 = I.ingest(db, *I.read_report(days[1]), source="day2")
    assert (s2.n_trained, s2.n_reprocessed, s2.n_set_aside) == (1, 1, 1)
    assert product_rows(db)[2] == ("jw01234-o003_t002_nirspec_g395h-f290lp", 2)

    I.ingest(db, *I.read_report(days[2]), source="day3")
    after_day3 = snapshot(db)
    assert training_rows(db) == [(NIRCAM, 5200.0, 1), (MIRI, 3000.0, 0), (IFU, 7000.0, 0)]
    assert product_rows(db) == [(NIRCAM, 2), (MIRI, 1), (IFU, 2)]
    assert target_rows(db) == [("name:NGC-1", 3, 1), ("pos:150.100000,+2.200000", 4, 1)]
    assert [(r[0], r[1], r[4]) for r in after_day3["set_aside"]] == [(MOSAIC, "mosaic", 9000.0)]
    counts = db.counts()
    assert counts["pending"] == 0 and counts["exposures"] == 5

    s4 = I.ingest(db, *I.read_report(days[2]), source="day3 again")
    assert (s4.n_exposures, s4.n_products, s4.n_trained, s4.n_reprocessed, s4.n_pending) == (0, 0, 0, 0, 0)
    assert snapshot(db) == after_day3


def test_a_target_added_later_renames_nothing(db, tmp_path):
    def exp(name, obs, target):
        return exposure_row("LEVEL_1", name, OBSERVTN=obs, TARGNAME=target, INSTRUME="NIRCAM", DETECTOR="NRCA1",
                            EXP_TYPE="NRC_IMAGE", FILTER="F200W", PUPIL="CLEAR")

    day1 = [exp("jw01234001001_02101_00001_nrca1", "001", "ZETA"), exp("jw01234002001_02101_00001_nrca1", "002", "MIDDLE"),
            {"Dataset": "jw01234-o001_t007_nircam_clear-f200w", "DagNodeName": "LEVEL_3", "ImageSize": "10"}]
    I.ingest(db, *I.read_report(write_rows(tmp_path / "a.csv", day1)))
    before = product_rows(db)
    assert before == [("jw01234-o001_t007_nircam_clear-f200w", 1), ("jw01234-o002_t001_nircam_clear-f200w", 1)]
    # A target whose name sorts first, in a new observation and in an old one.
    day2 = [exp("jw01234003001_02101_00001_nrca1", "003", "ALPHA"), exp("jw01234001001_02101_00002_nrca1", "001", "ALPHA")]
    I.ingest(db, *I.read_report(write_rows(tmp_path / "b.csv", day2)))
    after = product_rows(db)
    assert sorted(after) == sorted(before + [("jw01234-o001_t008_nircam_clear-f200w", 1),
                                             ("jw01234-o003_t008_nircam_clear-f200w", 1)])
    assert training_rows(db) == [("jw01234-o001_t007_nircam_clear-f200w", 10.0, 0)]


def test_a_report_number_moves_a_provisional_holder(db, tmp_path):
    def exp(name, obs, target):
        return exposure_row("LEVEL_1", name, OBSERVTN=obs, TARGNAME=target, INSTRUME="MIRI", DETECTOR="MIRIMAGE",
                            EXP_TYPE="MIR_IMAGE", FILTER="F560W")

    I.ingest(db, *I.read_report(write_rows(tmp_path / "a.csv", [
        exp("jw01234001001_02101_00001_mirimage", "001", "A"), exp("jw01234002001_02101_00001_mirimage", "002", "B")])))
    assert [n for n, _ in product_rows(db)] == ["jw01234-o001_t001_miri_f560w", "jw01234-o002_t002_miri_f560w"]
    # Operations call B target 1: A, still provisional, moves to the next free number.
    I.ingest(db, *I.read_report(write_rows(tmp_path / "b.csv", [
        {"Dataset": "jw01234-o002_t001_miri_f560w", "DagNodeName": "LEVEL_3", "ImageSize": "5"}])))
    assert [n for n, _ in product_rows(db)] == ["jw01234-o001_t003_miri_f560w", "jw01234-o002_t001_miri_f560w"]
    assert target_rows(db) == [("name:B", 1, 1), ("name:A", 3, 0)]
    assert training_rows(db) == [("jw01234-o002_t001_miri_f560w", 5.0, 0)]
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(D.pending.c.name)).scalars().all() == ["jw01234-o001_t003_miri_f560w"]


def test_two_targets_in_one_observation_need_the_rows_target(db, tmp_path):
    def exp(name, target, ra):
        return exposure_row("LEVEL_1", name, OBSERVTN="001", TARGNAME=target, TARG_RA=ra, INSTRUME="NIRCAM",
                            DETECTOR="NRCA1", EXP_TYPE="NRC_IMAGE", FILTER="F150W", PUPIL="CLEAR")

    I.ingest(db, *I.read_report(write_rows(tmp_path / "a.csv", [
        exp("jw01234001001_02101_00001_nrca1", "NGC-1", "10.0"), exp("jw01234001001_02101_00002_nrca1", "NGC-2", "11.0")])))
    name = "jw01234-o001_t005_nircam_clear-f150w"
    # Without the row's target the cost fits two products: it waits.
    I.ingest(db, *I.read_report(write_rows(tmp_path / "b.csv", [
        {"Dataset": name, "DagNodeName": "LEVEL_3", "ImageSize": "5"}])))
    assert training_rows(db) == [] and db.counts()["pending_cost"] == 1
    I.ingest(db, *I.read_report(write_rows(tmp_path / "c.csv", [
        {"Dataset": name, "DagNodeName": "LEVEL_3", "ImageSize": "6", "TARGNAME": "NGC-2"}])))
    assert training_rows(db) == [(name, 6.0, 0)]
    assert target_rows(db)[-1] == ("name:NGC-2", 5, 1)
    assert db.counts()["pending_cost"] == 0


@pytest.mark.parametrize("stage, level", [
    ("LEVEL_1", "1"), ("CAL_LEVEL_1B", "1"), ("Level 2a", "2"), ("LEVEL3", "3"), ("CAL_LEVEL_3", "3"),
    ("ESTIMATE_LEVEL_3_MEMORY", "3"), ("SPEC3_VALIDATE", ""), ("", ""),
])
def test_stage_level(stage, level):
    assert I.stage_level(stage) == level


def test_report_rows_not_used_are_counted(tmp_path):
    rows = [exposure_row("LEVEL_1", "a_nrca1", OBSERVTN="001", INSTRUME="", EXP_TYPE="NRC_IMAGE", FILTER="F200W"),
            {"Dataset": "x", "DagNodeName": "LEVEL_2B", "ImageSize": "1"},
            {"Dataset": "y", "DagNodeName": "QUICKLOOK", "ImageSize": "1"},
            {"Dataset": "z", "DagNodeName": "LEVEL_2B", "ImageSize": "1"},
            {"Dataset": NIRCAM, "DagNodeName": "LEVEL_3", "ImageSize": "1"},
            {"Dataset": NIRCAM, "DagNodeName": "LEVEL_3", "ImageSize": "2"}]
    report = I.parse_report(write_rows(tmp_path / "r.csv", rows))
    assert report.exposures == [] and [c.image_size_kb for c in report.costs] == [2.0]
    assert report.note() == (f"{tmp_path / 'r.csv'}: 5 of 6 rows not used: 2 with stage LEVEL_2B, "
                             "1 level-1 with INSTRUME missing, 1 repeating a product, 1 with stage QUICKLOOK")


def test_a_product_its_exposures_no_longer_make_is_dropped_unless_trained(db, tmp_path):
    l1, names = products_of(2)
    I.ingest(db, *I.read_report(write_report(tmp_path / "a.csv", l1 + [l3_row(names[0], 10)])))
    # Both observations' exposures are stored again with another filter.
    again = [dict(r, FILTER="F444W") for r in l1]
    I.ingest(db, *I.read_report(write_report(tmp_path / "b.csv", again)))
    assert [n for n, _ in product_rows(db)] == [
        names[0], "jw01234-o001_t001_nircam_clear-f444w", "jw01234-o002_t001_nircam_clear-f444w"]
    with db.engine.connect() as conn:
        assert sorted(conn.execute(sa.select(D.pending.c.name)).scalars()) == [
            "jw01234-o001_t001_nircam_clear-f444w", "jw01234-o002_t001_nircam_clear-f444w"]
    assert training_rows(db) == [(names[0], 10.0, 0)]
