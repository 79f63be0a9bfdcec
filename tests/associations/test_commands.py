from calpipe import cli
from calpipe.associations.asn import load_asn, member_paths

from support.pool_exposures import write_cp


def run(argv):
    return cli.main(argv)


def test_from_pool_out_elsewhere_writes_members_that_resolve(tmp_path, monkeypatch, capsys):
    sim = tmp_path / "sim"
    sim.mkdir()
    for det in ("WFI01", "WFI02"):
        write_cp(sim / f"cp00007002001_0001_{det.lower()}_uncal.asdf", det)
    monkeypatch.chdir(tmp_path)
    assert run(["asn", "from-pool", "sim/", "--out", "asn/"]) == 0
    (path,) = sorted((tmp_path / "asn").glob("*_asn.json"))
    asn = load_asn(path)
    assert [m["expname"] for m in asn["products"][0]["members"]] == [
        "../sim/cp00007002001_0001_wfi01_uncal.asdf", "../sim/cp00007002001_0001_wfi02_uncal.asdf"]
    assert all(p.is_file() for p in member_paths(asn, path)[0])
    # Written next to the exposures, members stay bare names.
    assert run(["asn", "from-pool", "sim/", "--out", "sim/"]) == 0
    (path,) = sorted(sim.glob("*_asn.json"))
    assert [m["expname"] for m in load_asn(path)["products"][0]["members"]][0] == "cp00007002001_0001_wfi01_uncal.asdf"


def test_from_pool_reports_unreadable_files_and_groups_the_rest(tmp_path, capsys):
    sim = tmp_path / "sim"
    sim.mkdir()
    write_cp(sim / "cp00007002001_0001_wfi01_uncal.asdf", "WFI01")
    (sim / "cp00007002001_0001_wfi02_uncal.asdf").write_bytes(b"#ASDF 1.0.0\ntruncated")
    (sim / "cp00007002001_0001_wfi03_uncal.fits").write_text("not fits")
    assert run(["asn", "from-pool", str(sim), "--out", str(tmp_path / "asn")]) == 1
    err = capsys.readouterr().err.splitlines()
    bad = [line for line in err if "error" in line]
    assert len(bad) == 2
    assert all(line.startswith("calpipe asn from-pool: error: ") for line in bad)
    assert "wfi02_uncal.asdf: cannot read ASDF metadata" in bad[0] and "wfi03_uncal.fits: cannot read FITS" in bad[1]
    (path,) = sorted((tmp_path / "asn").glob("*_asn.json"))
    assert [m["expname"] for m in load_asn(path)["products"][0]["members"]] == ["../sim/cp00007002001_0001_wfi01_uncal.asdf"]


def from_pool(tmp_path, table):
    """Write ``table`` as a pool and run ``calpipe asn from-pool`` on it; its exit status."""
    pool = tmp_path / "pool.csv"
    pool.write_text(table)
    return run(["asn", "from-pool", str(pool), "--out", str(tmp_path / "asn")])


def test_from_pool_refuses_exposures_it_cannot_name(tmp_path, capsys):
    status = from_pool(tmp_path,
                       "FILENAME,PROGRAM,OBSERVTN,TARGNAME,INSTRUME,DETECTOR,EXP_TYPE,FILTER\n"
                       "a_uncal.fits,1234,1,X,NIRCAM,NRCA1,NRC_IMAGE,F200W\n"
                       "b_uncal.fits,1234,1,X,,NRCA1,NRC_IMAGE,F200W\n"
                       "c_uncal.fits,,1,X,MIRI,MIRIMAGE,MIR_IMAGE,F770W\n")
    assert status == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert err == [
        "calpipe asn from-pool: error: b_uncal.fits: cannot name its product (INSTRUME missing); left out",
        "calpipe asn from-pool: error: c_uncal.fits: cannot name its product (PROGRAM missing); left out",
    ]
    (path,) = sorted((tmp_path / "asn").glob("*_asn.json"))
    asn = load_asn(path)
    assert asn["products"][0]["name"] == "jw01234-o001_t001_nircam_f200w"
    assert [m["expname"] for m in asn["products"][0]["members"]] == ["../a_uncal.fits"]


def test_asn_from_pool_table(tmp_path, capsys):
    status = from_pool(tmp_path,
                       "FILENAME|PROGRAM|OBSERVTN|TARGETID|TARGNAME|INSTRUME|DETECTOR|EXP_TYPE|FILTER|PUPIL\n"
                       "a_uncal.fits|1234|1|3|X|NIRCAM|NRCA1|NRC_IMAGE|F200W|CLEAR\n"
                       "b_uncal.fits|1234|1|3|X|NIRCAM|NRCA2|NRC_IMAGE|F200W|CLEAR\n"
                       "c_uncal.fits|1234|2|3|X|NIRCAM|NRCA1|NRC_DARK|F200W|CLEAR\n")
    assert status == 0
    (path,) = sorted((tmp_path / "asn").glob("*_asn.json"))
    asn = load_asn(path)
    assert asn["products"][0]["name"] == "jw01234-o001_t003_nircam_clear-f200w"
    assert [m["expname"] for m in asn["products"][0]["members"]] == ["../a_uncal.fits", "../b_uncal.fits"]
    assert asn["asn_pool"] == "pool.csv"


def test_from_pool_without_a_pool_exits_2(tmp_path, capsys):
    assert run(["asn", "from-pool", str(tmp_path / "nopool.csv"), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("calpipe asn from-pool: error: ")
