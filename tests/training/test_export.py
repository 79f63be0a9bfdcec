import pandas as pd
import pytest
import sqlalchemy as sa

from calpipe import cli
from calpipe.training import db as D, export as E, ingest as I
from calpipe.training.scrub import FEATURES

from support.report_rows import l1_row, l3_row, products_of, snapshot, write_report


def run(argv):
    return cli.main(argv)


def test_export_csvs_load_with_documented_columns(db, tmp_path):
    l1, names = products_of(3)
    tso = l1_row("jw01234050001_03101_00001_nrcalong", "050", "F322W2", det="NRCALONG")
    tso.update(EXP_TYPE="NRC_TSGRISM", PUPIL="GRISMR", SUBARRAY="SUBGRISM256")
    I.ingest(db, *I.read_report(write_report(tmp_path / "r.csv", l1 + [tso] + [l3_row(names[0], 10), l3_row(names[1], 20)])))
    counts = E.export(db, tmp_path / "out")
    assert counts == {"training.csv": 2, "ingest.csv": 4, "train-image.csv": 2, "train-spec.csv": 0,
                      "train-tac.csv": 0, "rem-image.csv": 1, "rem-spec.csv": 0, "rem-tac.csv": 1,
                      "set-aside.csv": 0}
    frames = {f: pd.read_csv(tmp_path / "out" / f) for f in counts}
    assert list(frames["set-aside.csv"].columns) == list(E.SET_ASIDE_COLUMNS)
    assert list(frames["training.csv"].columns) == list(E.TRAINING_COLUMNS)
    assert list(frames["ingest.csv"].columns) == list(E.INGEST_COLUMNS)
    for fam in E.FAMILIES:
        assert list(frames[f"train-{fam}.csv"].columns) == ["dname", *FEATURES, *E.TARGETS]
        assert list(frames[f"rem-{fam}.csv"].columns) == ["dname", *FEATURES]
    train = frames["train-image.csv"]
    assert list(train["dname"]) == names[:2] and list(train["imagesize"]) == [10.0, 20.0]
    codes = db.encoding_table()
    assert set(train["filter"]) == {codes["filter"]["F200W"]}
    assert frames["rem-tac.csv"]["subarray"].iloc[0] == codes["subarray"]["SUBGRISM256"]
    assert (frames["ingest.csv"]["status"] == ["trained", "trained", "pending", "pending"]).all()
    assert train.select_dtypes("number").shape[1] == len(FEATURES) + len(E.TARGETS)


def test_cli_export_and_status(db_url, tmp_path, capsys):
    with D.TrainingDB(db_url) as database:
        l1, names = products_of(1)
        I.ingest(database, *I.read_report(write_report(tmp_path / "r.csv", l1 + [l3_row(names[0], 5)])), source="r.csv")
    assert run(["db", "status", "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "training                1" in out and "r.csv" in out
    assert run(["db", "export", "--out", str(tmp_path / "x"), "--db", db_url]) == 0
    assert pd.read_csv(tmp_path / "x" / "training.csv")["dname"].tolist() == names


def test_spacekit_layout(db, tmp_path):
    l1, names = products_of(2)
    fgs = l1_row("jw01234050001_02101_00001_guider1", "050", "NONE", det="GUIDER1")
    fgs.update(INSTRUME="FGS", EXP_TYPE="FGS_IMAGE", PUPIL="NONE")
    fgs_name = "jw01234-o050_t001_fgs_clear"
    mosaic = "jw01234-c1001_t001_nircam_clear-f200w"
    rows = l1 + [fgs, l3_row(names[0], 10), l3_row(fgs_name, 30), l3_row(mosaic, 99)]
    I.ingest(db, *I.read_report(write_report(tmp_path / "r.csv", rows)))
    counts = E.export_spacekit(db, tmp_path / "sk")
    assert counts == {"image.csv": 1, "spec.csv": 0, "fgs.csv": 1, "tac.csv": 0}
    for family, columns in E.SPACEKIT_COLUMNS.items():
        frame = pd.read_csv(tmp_path / "sk" / f"{family}.csv")
        assert list(frame.columns) == ["dname", *columns, "imagesize"]
        assert set(columns) - {"offset"} <= set(FEATURES)
    image = pd.read_csv(tmp_path / "sk" / "image.csv")
    assert image["dname"].tolist() == [names[0]] and image["imagesize"].tolist() == [10.0]
    assert image["offset"].isna().all() and image["pupil"].tolist() == [db.encoding_table()["pupil"]["CLEAR"]]
    assert pd.read_csv(tmp_path / "sk" / "fgs.csv")["dname"].tolist() == [fgs_name]
    # The mosaic is set aside, in its own export.
    E.export(db, tmp_path / "out")
    aside = pd.read_csv(tmp_path / "out" / "set-aside.csv")
    assert aside[["dname", "reason", "imagesize"]].values.tolist() == [[mosaic, "mosaic", 99.0]]


def test_cli_ingest_reports(db_url, tmp_path, capsys):
    l1, names = products_of(2)
    day1 = write_report(tmp_path / "day1.csv", l1 + [l3_row(names[0], 10), {"Dataset": "x", "DagNodeName": "LEVEL_2B",
                                                                            "ImageSize": "1"}])
    day2 = write_report(tmp_path / "day2.csv", [l3_row(names[1], 20)])
    (tmp_path / "bad.csv").write_text("Dataset,ImageSize\nx,1\n")
    argv = ["db", "ingest-reports", str(day1), str(tmp_path / "bad.csv"), str(tmp_path / "none.csv"), str(day2),
            "--db", db_url]
    assert run(argv) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"calpipe db ingest-reports: warning: {day1}: 1 of 6 rows not used: 1 with stage LEVEL_2B",
        f"calpipe db ingest-reports: error: {tmp_path / 'bad.csv'}: report lacks column(s) DagNodeName; left out",
        f"calpipe db ingest-reports: error: {tmp_path / 'none.csv'}: cannot read report (No such file or directory);"
        " left out",
    ]
    assert [line.split(":")[0] for line in out.splitlines()] == [str(day1), str(day2)]
    with D.TrainingDB(db_url) as database:
        assert database.counts()["training"] == 2 and database.counts()["pending"] == 0
    assert run(["db", "ingest-reports", str(day1), str(day2), "--db", db_url]) == 0


def test_cli_user_errors_exit_2(tmp_path, capsys):
    assert run(["db", "status", "--db", str(tmp_path / "missing.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "calpipe db status: error:" in err and "no such database file" in err
    assert not (tmp_path / "missing.db").exists()


def test_schema_version_checked(tmp_path):
    url = f"sqlite:///{tmp_path / 'v.db'}"
    D.TrainingDB(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(D.meta_table.update().where(D.meta_table.c.key == "schema_version").values(value="99"))
    engine.dispose()
    with pytest.raises(D.DatabaseError, match="schema version 99, this calpipe needs 2"):
        D.TrainingDB(url)


def _as_schema_1(url):
    """Turn a database into what calpipe 0.1 wrote: no targets, set_aside, match_key, target."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE targets")
        conn.exec_driver_sql("DROP TABLE set_aside")
        conn.exec_driver_sql("DROP INDEX ix_products_match_key")
        conn.exec_driver_sql("ALTER TABLE products DROP COLUMN match_key")
        conn.exec_driver_sql("ALTER TABLE products DROP COLUMN target")
        conn.execute(D.meta_table.update().where(D.meta_table.c.key == "schema_version").values(value="1"))
    engine.dispose()


def test_schema_1_is_migrated(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'v1.db'}"
    l1, names = products_of(2)
    with D.TrainingDB(url) as database:
        I.ingest(database, *I.read_report(write_report(tmp_path / "a.csv", l1 + [l3_row(names[0], 10)])))
        expected = snapshot(database)
    _as_schema_1(url)
    # A query refuses the old schema with one line and changes nothing.
    assert run(["db", "status", "--db", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "schema version 1, this calpipe needs 2; upgrade it with `calpipe db migrate" in err
    assert run(["db", "migrate", "--db", url]) == 0
    assert "schema version 1 upgraded to 2" in capsys.readouterr().out
    with D.TrainingDB(url, create=False) as database:
        got = snapshot(database)
        # Everything as before; the targets say where their numbers came from.
        assert [t[:5] for t in got.pop("targets")] == [t[:5] for t in expected.pop("targets")]
        assert got == expected
        # Ingesting the rest after the upgrade trains the second product under its stored name.
        I.ingest(database, *I.read_report(write_report(tmp_path / "b.csv", [l3_row(names[1], 20)])))
        assert database.counts()["training"] == 2 and database.counts()["pending"] == 0
    assert run(["db", "migrate", "--db", url]) == 0
    assert "nothing to do" in capsys.readouterr().out
