"""Versions, no-op re-adds, transactions, queries and reprocessing of the product archive."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from support.archive_data import write_cal

from calpipe import __version__
from calpipe import datamodels as dm
from calpipe.archive.checksums import file_checksum
from calpipe.archive import Archive, ArchiveError
from calpipe.associations.asn import load_asn, member_paths
from calpipe.cli import main
from calpipe.references import RefStore


def products(run, uncal):
    return [uncal, *sorted(run.iterdir())]


def snapshot(folder):
    """Every path under the archive (links with their targets) and the database's content."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            out.append((path, os.readlink(path) if os.path.islink(path) else os.path.getsize(path)))
    return sorted(out)


def rows(archive):
    import sqlalchemy as sa

    with archive.db.engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar()
                for t in ("roots", "datasets", "provenance", "meta_cal")}


def test_two_runs_make_two_versions_until_released(two_runs, tmp_path, db_url):
    folder = tmp_path / "arc"
    with Archive(folder, db_url) as archive:
        first = archive.add(products(two_runs.run1, two_runs.uncal))
        second = archive.add(products(two_runs.run2, two_runs.uncal))
        assert first.added == [(two_runs.root, 1)] and second.added == [(two_runs.root, 2)]
        versions = archive.versions(two_runs.root)
        assert [(v["version"], v["default"], v["last"]) for v in versions] == [(1, True, False), (2, False, True)]
        assert {"uncal", "rate", "cal", "cat", "segm", "preview", "thumb"} <= set(versions[0]["types"])
        default = archive.find(file_type="cal", version="default")
        assert list(default["version"]) == [1]
        root_dir = folder / "00001" / two_runs.root
        assert os.readlink(root_dir / "default") == "v01" and os.readlink(root_dir / "last") == "v02"
        # The second version's raw exposure is the first's, stored once (a hard link).
        assert (root_dir / "v01" / f"{two_runs.root}_uncal.asdf").stat().st_ino == \
            (root_dir / "v02" / f"{two_runs.root}_uncal.asdf").stat().st_ino
        made = archive.provenance(two_runs.root, 2)
        assert made["parameters"]["steps"]["source_catalog"]["snr_threshold"] == 5.0
        assert made["inputs"] == {two_runs.uncal.name: file_checksum(two_runs.uncal)}
        assert made["calpipe_version"] == __version__ and made["cal_step"]["ramp_fit"] == "COMPLETE"

        archive.release(two_runs.root, 2)
        assert list(archive.find(file_type="cal", version="default")["version"]) == [2]
        assert os.readlink(root_dir / "default") == "v02"
        assert archive.get(two_runs.root, "cal") == root_dir / "v02" / f"{two_runs.root}_cal.asdf"

        before, counts = snapshot(folder), rows(archive)
        for version, run in ((1, two_runs.run1), (2, two_runs.run2)):
            again = archive.add(products(run, two_runs.uncal))
            assert again.added == [] and again.errors == [] and again.unchanged == [(two_runs.root, version)]
        if db_url is None:
            assert snapshot(folder) == before
        assert rows(archive) == counts


def test_paths_are_relative_and_the_archive_moves(two_runs, tmp_path):
    folder = tmp_path / "arc"
    with Archive(folder) as archive:
        archive.add(products(two_runs.run1, two_runs.uncal), previews=False)
        stored = list(archive.find(version="all")["path"])
    import sqlalchemy as sa

    with Archive(folder) as archive, archive.db.engine.connect() as conn:
        relative = [p for (p,) in conn.execute(sa.text("SELECT path FROM datasets"))]
    assert len(relative) == len(stored) == len(products(two_runs.run1, two_runs.uncal)) and not any(os.path.isabs(p) for p in relative)
    shutil.move(folder, tmp_path / "moved")
    with Archive(tmp_path / "moved", create=False) as archive:
        assert archive.get(two_runs.root, "cal").is_file()


def test_a_failure_leaves_the_archive_as_it_was(tmp_path, monkeypatch, db_url):
    folder = tmp_path / "arc"
    first = write_cal(tmp_path / "a", "cp00001001001_0001_wfi01", seed=1)
    with Archive(folder, db_url) as archive:
        archive.add([first], previews=False)
    before = snapshot(folder)
    newer = write_cal(tmp_path / "b", "cp00001001001_0001_wfi01", seed=2)
    other = write_cal(tmp_path / "b", "cp00001001001_0002_wfi01", seed=3)
    calls = []

    def broken(self, item):
        calls.append(item.root)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(self, item)

    original = Archive._provenance
    monkeypatch.setattr(Archive, "_provenance", broken)
    with Archive(folder, db_url) as archive:
        counts = rows(archive)
        with pytest.raises(RuntimeError):
            archive.add([newer, other], previews=False)
        assert len(calls) == 2  # the first root's new version was written, then undone
        assert rows(archive) == counts
        assert [v["version"] for v in archive.versions("cp00001001001_0001_wfi01")] == [1]
    if db_url is None:
        assert snapshot(folder) == before
    assert os.readlink(folder / "00001" / "cp00001001001_0001_wfi01" / "last") == "v01"


def test_bad_items_are_reported_and_the_rest_added(tmp_path, capsys):
    good = write_cal(tmp_path / "in", "cp00001001001_0001_wfi01")
    bad = tmp_path / "in" / "cp00001001001_0002_wfi01_cal.asdf"
    bad.write_bytes(b"#ASDF 1.0.0\n%YAML 1.1\n--- !core/asdf-1.1.0\n[unclosed\n")
    (tmp_path / "in" / "notes.txt").write_text("not a product")
    folder = tmp_path / "arc"
    assert main(["archive", "--archive", str(folder), "add", str(tmp_path / "in"), "--no-previews"]) == 1
    out, err = capsys.readouterr()
    assert "added     cp00001001001_0001_wfi01 v01" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("calpipe archive add: error: ") and str(bad) in lines[0]
    assert good.exists()


def test_find_filters_and_formats(tmp_path, capsys):
    made = {
        "cp00001001001_0001_wfi01": dict(detector="WFI01", start="2027-03-02T00:00:00"),
        "cp00001001001_0001_wfi02": dict(detector="WFI02", start="2027-03-02T00:00:00"),
        "cp00001001002_0001_wfi01": dict(detector="WFI01", start="2027-05-10T12:00:00"),
        "cp00001001003_0001_wfi01": dict(detector="WFI01", start="2027-01-01T00:00:00"),
        "cp00002001001_0001_wfi01": dict(detector="WFI01", start="2027-04-01T00:00:00", optical_element="F062",
                                         program=2),
    }
    paths = [write_cal(tmp_path / "in", root, seed=i, **kw) for i, (root, kw) in enumerate(made.items())]
    folder = str(tmp_path / "arc")
    assert main(["archive", "-a", folder, "add", *map(str, paths), "--no-previews"]) == 0
    capsys.readouterr()
    query = ["archive", "-a", folder, "find", "--detector", "wfi01", "--start", "2027-03-01", "--stop", "2027-05-31"]
    assert main([*query, "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [f["root"] for f in found] == ["cp00001001001_0001_wfi01", "cp00002001001_0001_wfi01",
                                          "cp00001001002_0001_wfi01"]
    first = found[0]
    assert first["type"] == "cal" and first["version"] == 1 and first["default"] is True
    assert first["path"] == os.path.join(folder, "00001", first["root"], "v01", f"{first['root']}_cal.asdf")
    assert main([*query, "--filter", "F062", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(",")[:5] == ["root", "type", "version", "default", "last"]
    assert len(lines) == 2 and lines[1].startswith("cp00002001001_0001_wfi01,cal,1,True,True,")
    assert main(["archive", "-a", folder, "find", "--program", "2", "--format", "table"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 and table[1].startswith("cp00002001001_0001_wfi01")
    assert main(["archive", "-a", folder, "get", "cp00001001003_0001_wfi01", "--type", "cal"]) == 0
    assert capsys.readouterr().out.strip().endswith("v01/cp00001001003_0001_wfi01_cal.asdf")
    # Python gets the same as an astropy Table.
    with Archive(folder, create=False) as archive:
        table = archive.find(detector="WFI01", start="2027-03-01", stop="2027-05-31")
        assert list(table["root"]) == [f["root"] for f in found] and table["version"].dtype.kind == "i"
        with pytest.raises(ArchiveError, match="no uncal file of version default"):
            archive.get("cp00001001003_0001_wfi01", "uncal")


def test_queries_on_a_missing_archive_create_nothing(tmp_path, capsys):
    folder = tmp_path / "none"
    assert main(["archive", "-a", str(folder), "find"]) == 2
    assert capsys.readouterr().err.startswith("calpipe archive find: error: ")
    assert not folder.exists()
    folder.mkdir()
    assert main(["archive", "-a", str(folder), "versions", "x"]) == 2
    assert list(folder.iterdir()) == []
    assert main(["archive", "-a", str(folder), "find", "--version", "newest"]) == 2


def test_stale_lists_exactly_the_products_with_a_newer_best_reference(two_runs, tmp_path, capsys):
    store = tmp_path / "refs"
    shutil.copytree(two_runs.refs, store)
    folder = tmp_path / "arc"
    with dm.open(two_runs.run1 / f"{two_runs.root}_cal.asdf") as cal:
        refs = dict(cal.meta.ref_file.to_dict())
    # An exposure of January uses the same references; a dark of March is not for it.
    early = write_cal(tmp_path / "early", "cp00001002001_0001_wfi01", start="2027-01-15T00:00:00",
                      ref_file=refs)
    with Archive(folder) as archive:
        archive.add([*products(two_runs.run1, two_runs.uncal)], previews=False)
        archive.add([early], previews=False)
        assert archive.stale(store) == []
        with dm.open(RefStore(store).best("dark", cal.meta.to_dict())) as dark:
            newer = dark.copy()
        newer.meta.useafter = "2027-03-01T00:00:00"
        RefStore(store).add([newer.save(tmp_path / "calpipe_wfi01_dark_2027.asdf")])
        stale = archive.stale(store)
        assert [(s["root"], s["version"]) for s in stale] == [(two_runs.root, 1)]
        assert stale[0]["reasons"] == ["dark: calpipe_wfi01_dark.asdf -> calpipe_wfi01_dark_2027.asdf"]

    assert main(["archive", "-a", str(folder), "stale", "--ref-store", str(store), "--format", "list",
                 "--asn-dir", str(tmp_path / "queue")]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == [str(folder / "00001" / two_runs.root / "v01" / f"{two_runs.root}_uncal.asdf")]
    (asn_path,) = sorted((tmp_path / "queue").glob("*_asn.json"))
    asn = load_asn(asn_path)
    assert [p.resolve() for p in member_paths(asn, asn_path)[0]] == [Path(listed[0]).resolve()]

    # Reprocess from the association (what a batch run does per member), archive, release.
    from calpipe.pipelines import ExposurePipeline

    ExposurePipeline.call(str(asn_path), output_dir=str(tmp_path / "re"), save_results=True, ref_store=str(store))
    with Archive(folder) as archive:
        result = archive.add([two_runs.uncal, *sorted((tmp_path / "re").glob(f"{two_runs.root}_*"))],
                             previews=False)
        assert result.added == [(two_runs.root, 2)]
        assert [s["root"] for s in archive.stale(store)] == [two_runs.root]  # v2 is not the default yet
        assert archive.provenance(two_runs.root, 2)["ref_files"]["dark"]["name"] == "calpipe_wfi01_dark_2027.asdf"
        archive.release(two_runs.root, 2)
        assert archive.stale(store) == []


def test_an_older_calpipe_is_stale(tmp_path):
    old = write_cal(tmp_path / "in", "cp00001001001_0001_wfi01", calpipe_version="0.0.9")
    with Archive(tmp_path / "arc") as archive:
        archive.add([old], previews=False)
        (stale,) = archive.stale(tmp_path / "arc")
    assert stale["reasons"][-1].startswith("calpipe 0.0.9 -> ") and stale["uncal"] is None
    np.testing.assert_equal(stale["version"], 1)


def test_a_reference_rewritten_under_its_name_is_stale(tmp_path):
    from support.tiny_data import write_tiny_store

    store = write_tiny_store(tmp_path / "refs")
    refs = {e["reftype"]: str(store / e["path"]) for e in RefStore(store).entries()}
    product = write_cal(tmp_path / "in", "cp00001001001_0001_wfi01", ref_file=refs)
    with Archive(tmp_path / "arc") as archive:
        archive.add([product], previews=False)
        assert archive.stale(store) == []
        with dm.open(refs["gain"]) as gain:
            changed = gain.copy()
        changed.data[:] = 2.5
        changed.save(refs["gain"])
        (stale,) = archive.stale(store)
    assert stale["reasons"] == ["gain: tiny_gain.asdf has changed content in the store"]
