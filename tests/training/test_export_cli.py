import pandas as pd
import pytest
import sqlalchemy as sa

from calpipe import cli
from calpipe.training import db as D, export as E, ingest as I
from calpipe.training.scrub import FEATURES

from test_ingest import l1_row, l3_row, products_of, write_report


def run(argv):
    return cli.main(argv)


def test_export_csvs_load_with_documented_columns(db, tmp_path):
    l1, names = products_of(3)
    tso = l1_row("jw01234050001_03101_00001_nrcalong", "050", "F322W2", det="NRCALONG")
    tso.update(EXP_TYPE="NRC_TSGRISM", PUPIL="GRISMR", SUBARRAY="SUBGRISM256")
    I.ingest(db, *I.read_report(write_report(tmp_path / "r.csv", l1 + [tso] + [l3_row(names[0], 10), l3_row(names[1], 20)])))
    counts = E.export(db, tmp_path / "out")
    assert counts == {"training.csv": 2, "ingest.csv": 4, "train-image.csv": 2, "train-spec.csv": 0,
                      "train-tac.csv": 0, "rem-image.csv": 1, "rem-spec.csv": 0, "rem-tac.csv": 1}
    frames = {f: pd.read_csv(tmp_path / "out" / f) for f in counts}
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


def test_cli_user_errors_exit_2(tmp_path, capsys):
    assert run(["db", "status", "--db", str(tmp_path / "missing.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "calpipe db status: error:" in err and "no such database file" in err
    assert not (tmp_path / "missing.db").exists()
    assert run(["asn", "from-pool", str(tmp_path / "nopool.csv"), "--out", str(tmp_path)]) == 2
    assert "cannot read pool" in capsys.readouterr().err


def test_schema_version_checked(tmp_path):
    url = f"sqlite:///{tmp_path / 'v.db'}"
    D.TrainingDB(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(D.meta_table.update().where(D.meta_table.c.key == "schema_version").values(value="99"))
    engine.dispose()
    with pytest.raises(D.DatabaseError, match="schema version 99, this calpipe needs 1"):
        D.TrainingDB(url)


def test_asn_from_pool_table(tmp_path, capsys):
    pool = tmp_path / "pool.csv"
    pool.write_text("FILENAME|PROGRAM|OBSERVTN|TARGETID|TARGNAME|INSTRUME|DETECTOR|EXP_TYPE|FILTER|PUPIL\n"
                    "a_uncal.fits|1234|1|3|X|NIRCAM|NRCA1|NRC_IMAGE|F200W|CLEAR\n"
                    "b_uncal.fits|1234|1|3|X|NIRCAM|NRCA2|NRC_IMAGE|F200W|CLEAR\n"
                    "c_uncal.fits|1234|2|3|X|NIRCAM|NRCA1|NRC_DARK|F200W|CLEAR\n")
    assert run(["asn", "from-pool", str(pool), "--out", str(tmp_path / "asn")]) == 0
    from calpipe.associations.asn import load_asn

    (path,) = sorted((tmp_path / "asn").glob("*_asn.json"))
    asn = load_asn(path)
    assert asn["products"][0]["name"] == "jw01234-o001_t003_nircam_clear-f200w"
    assert [m["expname"] for m in asn["products"][0]["members"]] == ["a_uncal.fits", "b_uncal.fits"]
    assert asn["asn_pool"] == "pool.csv"
