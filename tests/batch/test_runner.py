"""calpipe batch run on two programs of dithered associations: failures, reruns, repairs,
a killed worker, the memory ladder, and products identical to strun's."""

import contextlib
import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from calpipe import cli
from calpipe import datamodels as dm
from calpipe.batch import memory
from calpipe.batch.runner import STAGING, Options, run_batch
from calpipe.batch.state import DB_NAME
from calpipe.batch.tasks import KILL_HOOK, NEED_HOOK
from calpipe.simulate import simulate_dithered

BAD = "cp00002001001_0002_wfi01"
TWEAK = "--steps.tweakreg.min_matches=5"  # 7-8 stars per 256x256 exposure of program 1


def status_json(out):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert cli.main(["batch", "status", str(out), "--json"]) == 0
    return json.loads(buffer.getvalue())


def snapshot(folder):
    """Every file under ``folder`` (the state database aside) with its inode and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith("calpipe-batch.")}


def by_name(report, kinds=("member", "align")):
    """Task rows by name (a member's alignment shares its name: ``kinds`` picks)."""
    return {row["name"]: row for row in report["tasks"] if row["kind"] in kinds}


def by_key(report):
    return {row["key"]: row for row in report["tasks"]}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """Programs 1 and 2, three 256x256 exposures each; one member of program 2 truncated.

    Run 1 (2 workers): exits 1. Run 2 (the same, on ``--scheduler local``): exits 1, touches
    nothing. Run 3 after the repair, with the repaired member's worker killed in its first
    attempt and ``--ingest``: exits 0.
    """
    root = tmp_path_factory.mktemp("batch")
    a, b, out = root / "a", root / "b", root / "out"
    for folder, program, seed in ((a, 1, 1), (b, 2, 5)):
        assert cli.main(["simulate", "--out", str(folder), "--size", "256", "--nexposures", "3",
                         "--program", str(program), "--seed", str(seed)]) == 0
    bad = b / f"{BAD}_uncal.asdf"
    original = bad.read_bytes()
    bad.write_bytes(original[: len(original) // 2])
    args = ["batch", "run", str(a), str(b), "--output-dir", str(out), "--workers", "2",
            "--ref-store", str(a / "refs"), TWEAK]
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        runs["first"] = (cli.main(args), status_json(out), snapshot(out))
        runs["again"] = (cli.main([*args, "--scheduler", "local"]), status_json(out), snapshot(out))
        bad.write_bytes(original)
        mp.setenv(KILL_HOOK, BAD)
        training = root / "training.db"
        runs["repaired"] = (cli.main([*args, "--ingest", str(training)]), status_json(out), snapshot(out))
    return SimpleNamespace(root=root, a=a, b=b, out=out, runs=runs, training=training)


def test_one_bad_member_fails_alone_and_the_rest_is_calibrated_and_aligned(scenario):
    code, report, _ = scenario.runs["first"]
    assert code == 1
    rows = by_name(report)
    assert rows[BAD]["state"] == "failed"
    assert "truncated" in rows[BAD]["error"] and f"{BAD}_uncal.asdf" in rows[BAD]["error"]
    assert "\n" not in rows[BAD]["error"]
    others = [r for r in report["tasks"] if r["key"] != rows[BAD]["key"]]
    assert len(others) == 12 and all(r["state"] == "done" and r["attempts"] == 1 for r in others)
    assert report["totals"]["failed"] == 1
    aligns = [r for r in report["tasks"] if r["kind"] == "align"]
    assert len(aligns) == 2 and all(len(r["inputs"]) == (2 if "00002" in r["name"] else 3) for r in aligns)
    # Each fitted member is aligned and written by a task of its own: the bad one has none.
    applies = sorted(r["name"] for r in report["tasks"] if r["kind"] == "apply")
    assert len(applies) == 5 and BAD not in applies
    files = scenario.runs["first"][2]
    for program, n in (("cp00001001001", 3), ("cp00002001001", 2)):
        cals = [f for f in files if f.startswith(program) and f.endswith("_cal.asdf")]
        assert len(cals) == n and f"{BAD}_cal.asdf" not in cals
    staged = scenario.out / STAGING / "staged"
    assert sorted(p.name for p in staged.glob("cp00001001001_*_align.asdf")) == [
        f"cp00001001001_000{i}_wfi01_align.asdf" for i in (1, 2, 3)]  # each member's alignment entry
    for path in scenario.out.glob("cp00001001001_*_cal.asdf"):  # program 1 is never rewritten
        with dm.open(path) as cal:
            assert cal.meta.cal_step.tweakreg == "COMPLETE"
            assert cal.meta.resources.exposure_pipeline.peak_rss_mb > 0


def test_the_same_command_again_redoes_nothing_that_succeeded(scenario):
    code, report, files = scenario.runs["again"]
    assert code == 1
    assert files == scenario.runs["first"][2]  # not one product rewritten
    bad = by_name(report)[BAD]
    assert bad["state"] == "failed" and bad["attempts"] == 1
    rows, before = by_key(report), by_key(scenario.runs["first"][1])
    assert rows.keys() == before.keys()
    for key, row in rows.items():
        if key != bad["key"]:
            assert (row["state"], row["updated"], row["attempts"]) == (
                "done", before[key]["updated"], before[key]["attempts"])


def test_after_the_repair_the_rest_is_done_despite_a_killed_worker(scenario):
    code, report, files = scenario.runs["repaired"]
    assert code == 0
    # 6 members, 2 fits, 6 members aligned.
    assert report["totals"] == {**report["totals"], "done": 14, "failed": 0, "tasks": 14}
    repaired = by_name(report)[BAD]
    # Every attempt is kept: the two failed runs, then the killed worker and the retry.
    assert [a["outcome"] for a in repaired["attempt_log"]] == ["failed", "failed", "memory", "done"]
    first, second = repaired["attempt_log"][2:]
    assert "worker killed" in first["error"]
    assert second["reservation_mb"] == pytest.approx(2 * first["reservation_mb"])
    # No partial product anywhere; program 1 untouched; program 2 aligned again over 3 members.
    assert not [f for f in files if f.endswith(".part")]
    program1 = {f: v for f, v in scenario.runs["first"][2].items() if "cp00001001001" in f}
    assert {f: files[f] for f in program1} == program1
    align2 = next(r for r in report["tasks"] if r["kind"] == "align" and "00002" in r["name"])
    assert len(align2["inputs"]) == 3
    assert len(list(scenario.out.glob("cp00002001001_*_cal.asdf"))) == 3


def test_finished_associations_are_ingested(scenario):
    from calpipe.training.db import TrainingDB

    with TrainingDB(str(scenario.training), create=False) as database:
        counts = database.counts()
    assert counts["exposures"] == 6
    assert counts["training"] == 2  # both products matched with their measured cost


def test_products_are_those_of_strun(scenario, tmp_path):
    from calpipe.pipelines import ExposurePipeline

    asn = next(scenario.a.glob("*_asn.json"))
    ExposurePipeline.call(str(asn), output_dir=str(tmp_path), ref_store=str(scenario.a / "refs"),
                          save_results=True, steps={"tweakreg": {"min_matches": 5}})
    theirs = sorted(p.name for p in tmp_path.iterdir())
    ours = sorted(p.name for p in scenario.out.glob("cp00001001001_*"))
    assert theirs == ours and len(ours) == 12  # cal, cat, segm, wcs per member
    y, x = np.mgrid[0:248:16, 0:248:16]
    for name in theirs:
        if not name.endswith("_cal.asdf"):
            continue
        with dm.open(tmp_path / name) as ref, dm.open(scenario.out / name) as got:
            for array in ("data", "dq", "err", "var_poisson", "var_rnoise"):
                np.testing.assert_array_equal(getattr(got, array), getattr(ref, array))
            assert got.meta.cal_step.to_dict() == ref.meta.cal_step.to_dict()
            assert got.meta.cal_step.tweakreg == "COMPLETE"
            fit, ref_fit = got.meta.wcs_fit_results.to_dict(), ref.meta.wcs_fit_results.to_dict()
            np.testing.assert_allclose(fit["relative"].get("shift", [0, 0]), ref_fit["relative"].get("shift", [0, 0]),
                                       rtol=0, atol=1e-9)
            np.testing.assert_allclose(got.meta.wcs(x, y), ref.meta.wcs(x, y), rtol=0, atol=1e-11)  # degrees
            np.testing.assert_allclose(np.asarray(got.source_catalog["ra"]), np.asarray(ref.source_catalog["ra"]),
                                       rtol=0, atol=1e-11)


def test_the_memory_ladder_climbs_to_the_cap_and_records_every_attempt(tmp_path, monkeypatch):
    sim = simulate_dithered(tmp_path / "sim", 2, size=128, seed=3)
    roots = [e.root for e in sim.exposures]
    product = json.loads(Path(sim.association).read_text())["products"][0]["name"]
    # The first needs 700 MB: 401 -> 802 fits. The second needs more than the 1 GB cap.
    # The fit (reserving 400 MB: no image) needs 700 MB too, and so does the first member's
    # alignment (reserving 400.6 MB for one 128x128 image).
    monkeypatch.setenv(NEED_HOOK, f"{roots[0]}:700,{roots[1]}:5000,{product}:700,{product}/{roots[0]}:700")
    out = tmp_path / "out"
    options = Options(inputs=[str(sim.association)], output_dir=str(out), workers=1, memory_limit="1GiB",
                      ref_store=str(sim.refs), processes=False)
    with contextlib.redirect_stdout(io.StringIO()) as summary:
        assert run_batch(options) == 1
    rows = by_name(status_json(out))
    fits, never = rows[roots[0]], rows[roots[1]]
    assert [a["outcome"] for a in fits["attempt_log"]] == ["memory", "done"]
    assert fits["attempt_log"][1]["reservation_mb"] == pytest.approx(2 * fits["attempt_log"][0]["reservation_mb"])
    assert fits["reservation_source"] == "size-rule"
    assert [a["outcome"] for a in never["attempt_log"]] == ["memory", "memory", "memory"]
    assert [a["reservation_mb"] for a in never["attempt_log"]][-1] == pytest.approx(1024.0)
    assert never["state"] == "failed" and never["error"].startswith("out of memory after 3 attempt(s)")
    assert f"FAILED {roots[1]}: out of memory" in summary.getvalue()
    # The fit ran over the member that succeeded, and that member was aligned by a task of its own.
    align = next(r for r in rows.values() if r["kind"] == "align")
    assert align["state"] == "done" and len(align["inputs"]) == 1
    assert align["reservation_source"] == "size-rule"
    assert [a["outcome"] for a in align["attempt_log"]] == ["memory", "done"]
    first, second = (a["reservation_mb"] for a in align["attempt_log"])
    assert first == pytest.approx(memory.BASE_MB) and second == pytest.approx(2 * first)
    (apply,) = by_name(status_json(out), kinds=("apply",)).values()
    assert apply["name"] == roots[0] and apply["state"] == "done"
    assert [a["outcome"] for a in apply["attempt_log"]] == ["memory", "done"]
    first, second = (a["reservation_mb"] for a in apply["attempt_log"])
    assert first == pytest.approx(memory.size_rule_mb(128 * 128, 0)) and second == pytest.approx(2 * first)
    assert (out / STAGING).is_dir() and (out / DB_NAME).is_file()


def test_a_failed_alignment_is_redone_alone_and_the_fit_is_kept(tmp_path):
    sim = simulate_dithered(tmp_path / "sim", 3, size=128, seed=4)
    roots = sorted(e.root for e in sim.exposures)
    out = tmp_path / "out"
    blocked = out / f"{roots[1]}_cal.asdf"
    blocked.mkdir(parents=True)  # the member's final image cannot be renamed into place
    options = Options(inputs=[str(sim.association)], output_dir=str(out), workers=1,
                      ref_store=str(sim.refs), processes=False)
    with contextlib.redirect_stdout(io.StringIO()) as summary:
        assert run_batch(options) == 1
    assert f"FAILED {roots[1]} (alignment): IsADirectoryError" in summary.getvalue()
    first = status_json(out)
    applies = by_name(first, kinds=("apply",))
    assert {r: applies[r]["state"] for r in roots} == {roots[0]: "done", roots[1]: "failed", roots[2]: "done"}
    assert str(blocked) in applies[roots[1]]["error"] and "\n" not in applies[roots[1]]["error"]
    assert [a["outcome"] for a in applies[roots[1]]["attempt_log"]] == ["failed"]  # not retried blindly
    assert not [f for f in snapshot(out) if f.endswith(".part")] and not list(blocked.iterdir())
    (fit,) = by_name(first, kinds=("align",)).values()
    assert fit["state"] == "done" and fit["attempts"] == 1
    files = {f: v for f, v in snapshot(out).items() if not f.startswith(roots[1])}

    blocked.rmdir()
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_batch(options) == 0
    second = status_json(out)
    before, after = by_key(first), by_key(second)
    changing = ("updated", "state", "attempts")
    redone = {k for k, row in after.items() if [row[c] for c in changing] != [before[k][c] for c in changing]}
    assert redone == {applies[roots[1]]["key"]}  # neither the members nor the fit nor the others
    assert [a["outcome"] for a in after[applies[roots[1]]["key"]]["attempt_log"]] == ["failed", "done"]
    assert after[applies[roots[1]]["key"]]["attempts"] == 2
    now = snapshot(out)
    assert {f: now[f] for f in files} == files  # nothing but the failed member's products is written again
    assert f"{roots[1]}_cal.asdf" in now
    with dm.open(blocked) as cal, dm.open(out / f"{roots[0]}_cal.asdf") as other:
        assert cal.meta.resources.tweakreg.to_dict() == other.meta.resources.tweakreg.to_dict()  # one fit


def test_local_workers_start_with_the_pipeline_loaded(tmp_path, monkeypatch):
    from calpipe.batch.runner import start_client, _shut_down

    monkeypatch.setenv("CALPIPE_BATCH_PROBE", "now")  # set after any fork server started
    client, cluster, *_ = start_client(Options(inputs=[], output_dir=str(tmp_path), workers=1))
    try:
        # Asked before any task ran there (builtins only, so that asking imports nothing).
        (loaded,) = client.run(eval, "[m in __import__('sys').modules for m in ('calpipe.pipelines', 'stpipe')]"
                               " + [__import__('os').environ.get('CALPIPE_BATCH_PROBE')]").values()
    finally:
        _shut_down(client, cluster)
    assert loaded == [True, True, "now"]


def test_usage_errors_exit_2_without_creating_anything(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["batch", "run", str(tmp_path / "missing"), "--output-dir", str(out)]) == 2
    assert "no such association file or folder" in capsys.readouterr().err
    asn = tmp_path / "x_asn.json"
    asn.write_text("{}")
    assert cli.main(["batch", "run", str(asn), "--output-dir", str(out), "--ref-store", str(tmp_path),
                     "--pipeline", "training_ingest"]) == 2
    assert "not an exposure pipeline" in capsys.readouterr().err
    assert cli.main(["batch", "run", str(asn), "--output-dir", str(out), "--ref-store", str(tmp_path),
                     "--steps.tweakreg"]) == 2
    assert "expected --steps.<step>.<param>=VALUE" in capsys.readouterr().err
    assert cli.main(["batch", "run", str(asn), "--output-dir", str(out), "--ref-store", str(tmp_path),
                     "--archive", str(asn)]) == 2  # a file where the archive folder should be
    assert f"--archive {asn}: cannot create the archive" in capsys.readouterr().err
    assert cli.main(["batch", "status", str(out)]) == 2
    assert not out.exists()


@pytest.mark.slow
def test_against_a_scheduler_started_separately(scenario, tmp_path):
    import subprocess
    import sys
    import time

    dask = str(Path(sys.executable).with_name("dask"))
    scheduler_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(scheduler_file)], stderr=subprocess.DEVNULL)]
    try:
        while not scheduler_file.exists():
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        procs.append(subprocess.Popen([dask, "worker", address, "--nworkers", "2", "--nthreads", "1",
                                       "--resources", "MEMORY=2000", "--no-dashboard"], stderr=subprocess.DEVNULL))
        a = tmp_path / "a"
        shutil.copytree(scenario.a, a)
        out = tmp_path / "out"
        args = ["batch", "run", str(a), "--output-dir", str(out), "--scheduler", address, TWEAK,
                "--ref-store", str(a / "refs")]
        assert cli.main(args) == 0
        assert status_json(out)["totals"]["done"] == 7  # 3 members, the fit, 3 alignments
        files = snapshot(out)
        assert cli.main(args) == 0 and snapshot(out) == files
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)


def test_archive_keeps_each_finished_association_and_stale_feeds_a_new_run(tmp_path, capsys):
    from calpipe.references.store import RefStore

    a, arc, out = tmp_path / "a", tmp_path / "arc", tmp_path / "out"
    assert cli.main(["simulate", "--out", str(a), "--size", "256", "--nexposures", "3", "--program", "1",
                     "--seed", "1"]) == 0
    store = a / "refs"
    roots = sorted(p.name.removesuffix("_uncal.asdf") for p in a.glob("*_uncal.asdf"))
    # A version folder the database does not know blocks the association's add: nothing is archived.
    blocker = arc / "00001" / roots[0] / "v01"
    blocker.mkdir(parents=True)
    args = ["batch", "run", str(a), "--output-dir", str(out), "--workers", "1", "--archive", str(arc),
            "--ref-store", str(store), TWEAK]
    assert cli.main(args) == 1
    (align,) = [r for r in status_json(out)["tasks"] if r["kind"] == "align"]
    assert align["state"] == "done" and align["error"].startswith("archive: ")
    assert "\n" not in align["error"] and str(blocker) in align["error"]
    assert f"FAILED {align['name']}: archive: " in capsys.readouterr().out
    assert len(list(out.glob("*_cal.asdf"))) == 3  # the products are kept
    blocker.rmdir()
    # The same command again calibrates nothing and archives the association.
    before = by_name(status_json(out))
    assert cli.main(args) == 0
    after = by_name(status_json(out))
    assert all(after[r]["attempts"] == before[r]["attempts"] == 1 for r in roots)
    assert after[align["name"]]["error"] is None
    capsys.readouterr()
    assert cli.main(["archive", "--archive", str(arc), "find", "--version", "all", "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert sorted({r["root"] for r in found}) == roots
    for root in roots:
        assert sorted(r["type"] for r in found if r["root"] == root) == [
            "cal", "cat", "preview", "segm", "thumb", "uncal", "wcs"]
    cals = [r for r in found if r["type"] == "cal"]
    assert all(r["version"] == 1 and r["default"] is True for r in cals)
    for row in cals:
        assert Path(row["path"]).read_bytes() == (out / f"{row['root']}_cal.asdf").read_bytes()

    # A newer dark in the store makes every product stale; its associations calibrate again.
    with dm.open(out / f"{roots[0]}_cal.asdf") as cal:
        with dm.open(RefStore(store).best("dark", cal.meta.to_dict())) as dark:
            newer = dark.copy()
    newer.meta.useafter = "2027-03-01T00:00:00"
    RefStore(store).add([newer.save(tmp_path / "calpipe_wfi01_dark_2027.asdf")])
    queue, out2 = tmp_path / "queue", tmp_path / "out2"
    assert cli.main(["archive", "--archive", str(arc), "stale", "--ref-store", str(store),
                     "--asn-dir", str(queue)]) == 0
    assert sorted(p.name for p in queue.glob("*_asn.json")) == [f"{root}_asn.json" for root in roots]
    assert cli.main(["batch", "run", str(queue), "--output-dir", str(out2), "--workers", "1",
                     "--ref-store", str(store), TWEAK]) == 0
    for root in roots:
        with dm.open(out2 / f"{root}_cal.asdf") as cal:
            assert Path(cal.meta.ref_file.dark).name == "calpipe_wfi01_dark_2027.asdf"
