"""The state database: checksums reused only for unchanged files, rows, read-only status."""

import hashlib
import os

import pytest

from calpipe.batch.state import StateDB, file_record, fingerprint, totals
from calpipe.errors import CalpipeError


def test_file_record_reuses_a_checksum_only_while_size_and_time_are_unchanged(tmp_path):
    path = tmp_path / "x.asdf"
    path.write_bytes(b"abc" * 1000)
    first = file_record(path)
    assert first["sha256"] == hashlib.sha256(b"abc" * 1000).hexdigest()
    stale = dict(first, sha256="not-recomputed")
    assert file_record(path, stale)["sha256"] == "not-recomputed"
    path.write_bytes(b"abd" * 1000)  # same size, new content and time
    os.utime(path, ns=(first["mtime_ns"] + 10**9, first["mtime_ns"] + 10**9))
    assert file_record(path, stale)["sha256"] == hashlib.sha256(b"abd" * 1000).hexdigest()


def test_fingerprint_depends_on_every_part():
    assert fingerprint("a", {"x": 1}) == fingerprint("a", {"x": 1})
    assert fingerprint("a", {"x": 1}) != fingerprint("a", {"x": 2})
    assert fingerprint("a", {"x": 1}) != fingerprint("b", {"x": 1})


def test_rows_and_attempts_round_trip(tmp_path):
    db = StateDB(tmp_path)
    db.upsert("member:a", kind="member", association="a_asn.json", name="a", inputs=[{"path": "a"}],
              params={"p": 1}, fingerprint="f", state="running", attempts=1, npixels=100, nresultants=6)
    db.add_attempt("member:a", 1, 300.0, "memory", error="MemoryError: x")
    db.upsert("member:a", state="done", peak_mb=350.0, wall_s=2.0, products=["a_cal.asdf"])
    row = db.get("member:a")
    assert (row["state"], row["products"], row["inputs"]) == ("done", ["a_cal.asdf"], [{"path": "a"}])
    assert [a["outcome"] for a in db.attempts_of("member:a")] == ["memory"]
    assert db.history() == [(100, 6, 350.0)]
    db.upsert("member:b", kind="member", association="a", name="b", inputs=[], params={}, fingerprint="g",
              state="running", attempts=1)
    db.reset_running()
    assert db.get("member:b")["state"] == "pending"
    assert totals(db.all())["done"] == 1
    db.close()


def test_status_never_creates_a_database(tmp_path):
    with pytest.raises(CalpipeError, match="no batch state database"):
        StateDB(tmp_path / "nothing", readonly=True)
    assert not (tmp_path / "nothing").exists()
