"""The state database of a batch run: one SQLite file in the output folder.

Only the client that drives a run writes to it (workers return their results to the client),
so there is one writer at a time; a second client on the same folder is refused by a lock.

Tables:

- ``tasks``: one row per task (a member's calibration or an association's alignment): its
  inputs with their sizes, modification times and SHA-256 checksums, its parameters, the
  fingerprint of both (a rerun skips a done task whose fingerprint is unchanged), state
  (``pending``, ``running``, ``done``, ``failed``), attempts, the last reservation and
  where it came from, wall time, peak memory, the one-line error and the products.
- ``attempts``: every attempt of every task, with its reservation and outcome (``done``,
  ``memory``: out of memory or worker killed, ``failed``).
"""

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from calpipe.errors import CalpipeError

DB_NAME = "calpipe-batch.db"
STATES = ("pending", "running", "done", "failed")

metadata = sa.MetaData()
tasks = sa.Table(
    "tasks", metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),          # member | align
    sa.Column("association", sa.String, nullable=False),   # association file
    sa.Column("name", sa.String, nullable=False),          # member root or association id
    sa.Column("inputs", sa.Text, nullable=False),          # JSON [{path, size, mtime_ns, sha256}]
    sa.Column("params", sa.Text, nullable=False),          # JSON of the pipeline parameters
    sa.Column("fingerprint", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("reservation_mb", sa.Float),
    sa.Column("reservation_source", sa.String),
    sa.Column("npixels", sa.Integer),
    sa.Column("nresultants", sa.Integer),
    sa.Column("wall_s", sa.Float),
    sa.Column("peak_mb", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("products", sa.Text),                        # JSON list of paths
    sa.Column("updated", sa.String),
)
attempts = sa.Table(
    "attempts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String, nullable=False, index=True),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("reservation_mb", sa.Float),
    sa.Column("outcome", sa.String, nullable=False),       # done | memory | failed
    sa.Column("error", sa.Text),
    sa.Column("wall_s", sa.Float),
    sa.Column("peak_mb", sa.Float),
    sa.Column("ended", sa.String),
)


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def fingerprint(*parts):
    """A short stable hash of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def sha256_of(path, chunk=1 << 22):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_record(path, known=None):
    """``{path, size, mtime_ns, sha256}`` of a file; the checksum is reused from ``known`` (an
    earlier record of the same path) when size and modification time are unchanged."""
    stat = os.stat(path)
    record = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if known and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
        record["sha256"] = known["sha256"]
    else:
        record["sha256"] = sha256_of(path)
    return record


class StateDB:
    """The task table of one output folder."""

    def __init__(self, out_dir, readonly=False):
        self.path = Path(out_dir) / DB_NAME
        if readonly:
            if not self.path.exists():
                raise CalpipeError(f"{out_dir}: no batch state database ({DB_NAME}), expected a batch output folder")
            url = f"sqlite:///file:{self.path.resolve()}?mode=ro&uri=true"
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{self.path}"
        self.engine = sa.create_engine(url)
        if not readonly:
            metadata.create_all(self.engine)

    def close(self):
        self.engine.dispose()

    # -- reading ----------------------------------------------------------------------------
    def get(self, key):
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(tasks).where(tasks.c.key == key)).mappings().first()
        return _decoded(row) if row else None

    def all(self):
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(tasks).order_by(tasks.c.association, tasks.c.kind.desc(),
                                                          tasks.c.name)).mappings().all()
        return [_decoded(r) for r in rows]

    def attempts_of(self, key):
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(attempts).where(attempts.c.key == key)
                                .order_by(attempts.c.number)).mappings().all()
        return [dict(r) for r in rows]

    def history(self, kind="member"):
        """(npixels, nresultants, peak_mb) of every task of ``kind`` done so far."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(tasks.c.npixels, tasks.c.nresultants, tasks.c.peak_mb).where(
                    tasks.c.kind == kind, tasks.c.state == "done", tasks.c.peak_mb.is_not(None))
            ).all()
        return [tuple(r) for r in rows]

    # -- writing ----------------------------------------------------------------------------
    def upsert(self, key, **values):
        values = {k: (json.dumps(v) if k in ("inputs", "params", "products") else v) for k, v in values.items()}
        values["updated"] = _now()
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(tasks.c.key).where(tasks.c.key == key)).first()
            if exists:
                conn.execute(tasks.update().where(tasks.c.key == key).values(**values))
            else:
                conn.execute(tasks.insert().values(key=key, **values))

    def add_attempt(self, key, number, reservation_mb, outcome, error=None, wall_s=None, peak_mb=None):
        with self.engine.begin() as conn:
            conn.execute(attempts.insert().values(
                key=key, number=number, reservation_mb=reservation_mb, outcome=outcome, error=error,
                wall_s=wall_s, peak_mb=peak_mb, ended=_now()))

    def reset_running(self):
        """Tasks left ``running`` by a client that died are pending again."""
        with self.engine.begin() as conn:
            conn.execute(tasks.update().where(tasks.c.state == "running").values(state="pending"))


def _decoded(row):
    out = dict(row)
    for k in ("inputs", "params", "products"):
        if out.get(k):
            out[k] = json.loads(out[k])
    return out


def totals(rows):
    """Counts per state and the summed wall time of a list of task rows."""
    counts = {state: 0 for state in STATES}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    counts["tasks"] = len(rows)
    counts["wall_s"] = round(sum(r["wall_s"] or 0.0 for r in rows), 3)
    return counts


__all__ = ["DB_NAME", "StateDB", "file_record", "fingerprint", "sha256_of", "totals"]
