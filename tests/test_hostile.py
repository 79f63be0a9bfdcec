"""Every command against a careless or hostile user: one line, exit status 2, nothing left.

Each case runs a real command line (``strun`` in this process, through stpipe's own entry
point, for speed; ``calpipe`` through its ``main``) and checks: exit status 2, exactly one
``error:`` line on stderr, no traceback, no file created in the output folder or beside the
inputs, and databases unchanged.
"""

import json
import math
import os
import sqlite3
import sys
from pathlib import Path

import asdf
import numpy as np
import pytest
from stpipe._cli import strun as strun_cli
from support.tiny_data import write_tiny_association, write_tiny_exposure, write_tiny_store

from calpipe import cli

ROOT = "cp00001001001_0001_wfi01"


def run_strun(capsys, *args):
    """``strun ARGS`` as the console script runs it; returns (status, stdout, stderr)."""
    saved = sys.argv
    sys.argv = ["strun", *map(str, args)]
    try:
        strun_cli.main()
        status = 0
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 1
    finally:
        sys.argv = saved
    out, err = capsys.readouterr()
    return status, out, err


def snapshot(folder):
    return {p: p.stat().st_mtime_ns for p in Path(folder).rglob("*") if p.is_file()}


def assert_refused(status, out, err, expected, before, folder):
    errors = [line for line in err.splitlines() if "error:" in line]
    assert status == 2, err[-2000:]
    assert len(errors) == 1, err[-2000:]
    assert expected in errors[0], errors[0]
    assert "Traceback" not in out + err
    assert snapshot(folder) == before, "files were created or changed"


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A folder with a tiny exposure and its reference store, CALPIPE_REFS set, as cwd."""
    refs = write_tiny_store(tmp_path / "refs")
    monkeypatch.setenv("CALPIPE_REFS", str(refs))
    monkeypatch.chdir(tmp_path)
    uncal = Path(write_tiny_exposure(tmp_path / f"{ROOT}_uncal.asdf"))
    (tmp_path / "out").mkdir()
    return tmp_path, uncal


def rewrite_meta(path, **exposure):
    with asdf.open(path, lazy_load=False, memmap=False) as af:
        tree = {"meta": af.tree["meta"], "data": np.array(af.tree["data"])}
    tree["meta"]["exposure"].update(exposure)
    asdf.AsdfFile(tree).write_to(path)


def flip_array_byte(path):
    blob = bytearray(Path(path).read_bytes())
    blob[blob.index(b"\xd3BLK") + 60] ^= 0x5A
    Path(path).write_bytes(bytes(blob))


BAD_EXPOSURES = {
    "truncated": (lambda p: Path(p).write_bytes(Path(p).read_bytes()[:-500]), "_uncal.asdf"),
    "flipped array byte": (flip_array_byte, "damaged array data"),
    "frame_time 0": (lambda p: rewrite_meta(p, frame_time=0.0), "frame_time"),
    "frame_time nan": (lambda p: rewrite_meta(p, frame_time=math.nan), "frame_time"),
    "frame_time -1": (lambda p: rewrite_meta(p, frame_time=-1.0), "frame_time"),
    "read index 0": (lambda p: rewrite_meta(p, read_pattern=[[0], [2, 4], [5, 6, 7], [8]]), "read_pattern"),
    "reads not increasing": (lambda p: rewrite_meta(p, read_pattern=[[1], [4, 2], [5, 6, 7], [8]]),
                             "read_pattern"),
    "garbage start_time": (lambda p: rewrite_meta(p, start_time="yesterday"), "start_time"),
}


@pytest.mark.parametrize("problem", sorted(BAD_EXPOSURES))
def test_strun_refuses_a_bad_exposure(work, capsys, problem):
    folder, uncal = work
    damage, expected = BAD_EXPOSURES[problem]
    damage(uncal)
    before = snapshot(folder)
    assert_refused(*run_strun(capsys, "exposure_pipeline", uncal, "--output-dir", "out"),
                   expected, before, folder)


BAD_PARAMETERS = {
    "unknown algorithm": (["--steps.ramp_fit.algorithm=nope"], "algorithm"),
    "integer that is not": (["--steps.ramp_fit.block_rows=abc"], "block_rows"),
    "output folder is a file": (["--output-dir", f"{ROOT}_uncal.asdf"], "_uncal.asdf"),
    "missing input": (["--output-dir", "out", "--", "absent_uncal.asdf"], "absent_uncal.asdf"),
}


@pytest.mark.parametrize("problem", sorted(BAD_PARAMETERS))
def test_strun_refuses_a_bad_parameter(work, capsys, problem):
    folder, uncal = work
    args, expected = BAD_PARAMETERS[problem]
    if "--" in args:
        args = args[: args.index("--")] + args[args.index("--") + 1:]
        command = ["exposure_pipeline", *args[2:], *args[:2]]
    else:
        command = ["exposure_pipeline", uncal, *args]
    before = snapshot(folder)
    assert_refused(*run_strun(capsys, *command), expected, before, folder)


def test_strun_refuses_a_parameter_file_with_an_unknown_parameter(work, capsys):
    folder, uncal = work
    pars = folder / "pars.asdf"
    asdf.AsdfFile({"class": "calpipe.steps.RampFitStep", "name": "ramp_fit",
                   "parameters": {"no_such_parameter": 3}}).write_to(pars)
    before = snapshot(folder)
    assert_refused(*run_strun(capsys, pars, uncal, "--output-dir", "out"), "no_such_parameter",
                   before, folder)


def test_strun_refuses_a_missing_reference(work, capsys):
    folder, uncal = work
    index = folder / "refs" / "index.json"
    entries = json.loads(index.read_text())
    entries["files"] = [e for e in entries["files"] if e["reftype"] != "dark"]
    index.write_text(json.dumps(entries))
    before = snapshot(folder)
    assert_refused(*run_strun(capsys, "exposure_pipeline", uncal, "--output-dir", "out"), "dark",
                   before, folder)


@pytest.mark.parametrize("entry, expected", [
    ({"path": "../elsewhere.asdf"}, "outside the store"),
    ({"useafter": "soon"}, "not a time"),
    ({"reftype": None}, "lacks text values for reftype"),
])
def test_strun_refuses_a_damaged_store_index(work, capsys, entry, expected):
    folder, uncal = work
    index = folder / "refs" / "index.json"
    entries = json.loads(index.read_text())
    entries["files"][0].update(entry)
    index.write_text(json.dumps(entries))
    before = snapshot(folder)
    assert_refused(*run_strun(capsys, "exposure_pipeline", uncal, "--output-dir", "out"), expected,
                   before, folder)


def test_strun_refuses_association_members_with_one_output_name(work, capsys):
    folder, uncal = work
    (folder / "copy").mkdir()
    (folder / "copy" / uncal.name).write_bytes(uncal.read_bytes())
    asn = write_tiny_association(folder, [uncal.name, f"copy/{uncal.name}"])
    before = snapshot(folder)
    assert_refused(*run_strun(capsys, "exposure_pipeline", asn, "--output-dir", "out"),
                   "would both be written", before, folder)


def test_strun_finds_a_damaged_member_before_calibrating_any(work, capsys):
    folder, uncal = work
    second = folder / "cp00001001001_0002_wfi01_uncal.asdf"
    second.write_bytes(uncal.read_bytes())
    flip_array_byte(second)
    asn = write_tiny_association(folder, [uncal.name, second.name])
    before = snapshot(folder)
    status, out, err = run_strun(capsys, "exposure_pipeline", asn, "--output-dir", "out")
    assert_refused(status, out, err, "damaged array data", before, folder)
    assert "Calibrating" not in err


# -- the calpipe command ------------------------------------------------------------------------
def run_calpipe(capsys, *args):
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def foreign_database(folder):
    path = folder / "theirs.db"
    with sqlite3.connect(path) as db:
        db.execute("create table notes (id integer primary key, text text)")
        db.execute("insert into notes (text) values ('keep me')")
    return path


@pytest.mark.parametrize("command", [
    ["refs", "--store", "refs", "best", "absent_uncal.asdf"],
    ["refs", "--store", "nowhere", "list"],
    ["refs", "--store", "refs", "add", "absent.asdf"],
    ["simulate", "--out", "sim", "--size", "64", "--nexposures", "0"],
    ["asn", "from-pool", "nowhere", "--out", "asn"],
    ["db", "status", "--db", "absent.db"],
    ["db", "export", "--db", "absent.db", "--out", "exports"],
    ["model", "predict", "absent_asn.json", "--db", "absent.db"],
    ["batch", "run", "absent_asn.json", "--output-dir", "batch_out"],
    ["batch", "status", "nowhere"],
    ["archive", "--archive", "arc", "find"],
])
def test_calpipe_commands_refuse_bad_input(work, capsys, command):
    folder, _ = work
    before = snapshot(folder)
    assert_refused(*run_calpipe(capsys, *command), "", before, folder)


@pytest.mark.parametrize("command", [["db", "status"], ["db", "export", "--out", "exports"]])
def test_calpipe_leaves_a_foreign_database_alone(work, capsys, command):
    folder, _ = work
    theirs = foreign_database(folder)
    before = snapshot(folder)
    assert_refused(*run_calpipe(capsys, *command, "--db", theirs), "not a calpipe", before, folder)
    with sqlite3.connect(theirs) as db:
        assert [r[0] for r in db.execute("select name from sqlite_master")] == ["notes"]


def test_association_files_follow_the_umask(tmp_path):
    from calpipe.associations.asn import write_asn as write_association

    old = os.umask(0o022)
    try:
        path = write_association(json.loads(write_tiny_association(tmp_path, ["x_uncal.asdf"]).read_text()),
                                 tmp_path / "new_asn.json")
    finally:
        os.umask(old)
    assert Path(path).stat().st_mode & 0o777 == 0o644
