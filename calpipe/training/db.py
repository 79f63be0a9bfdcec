"""The training database: SQLAlchemy Core on SQLite (default) or PostgreSQL (by URL).

Tables
------
``calpipe_meta``  key/value: ``schema_version``, ``encoding_version``.
``ingest_runs``   one row per completed ingest: when, from what, counts (provenance).
``exposures``     one row per Level-1 exposure: normalised metadata (JSON) and key columns.
``products``      one row per Level-3 product: name, family, member digest, raw features.
``training``      one row per product whose cost is known: targets and dates.
``pending``       inputs waiting for their other half: a product without a cost yet
                  (``kind='product'``) or a cost whose product is not known yet (``kind='cost'``).
``encodings``     categorical value -> integer code per feature; codes never change once
                  given; each new value bumps ``encoding_version`` and records it.

Every write happens inside :meth:`TrainingDB.transaction`: one transaction, serialised
against other writers (SQLite ``BEGIN IMMEDIATE``; a PostgreSQL transaction-level advisory
lock), so two ingests at once neither lose nor duplicate rows; unique constraints and
upserts make a repeated ingest a no-op.
"""

import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from calpipe.errors import CalpipeError

SCHEMA_VERSION = 1
DEFAULT_DATABASE = "calpipe-training.db"
URL_ENV = "CALPIPE_DATABASE_URL"
_LOCK_KEY = 0x63616C70  # "calp": the advisory lock every PostgreSQL writer takes

metadata = sa.MetaData()

meta_table = sa.Table(
    "calpipe_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)
runs = sa.Table(
    "ingest_runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started", sa.String(32), nullable=False),
    sa.Column("finished", sa.String(32)),
    sa.Column("source", sa.Text, nullable=False, default=""),
    sa.Column("code_version", sa.String(32), nullable=False),
    sa.Column("encoding_version", sa.Integer, nullable=False),
    sa.Column("n_exposures", sa.Integer, nullable=False, default=0),
    sa.Column("n_costs", sa.Integer, nullable=False, default=0),
    sa.Column("n_products", sa.Integer, nullable=False, default=0),
    sa.Column("n_trained", sa.Integer, nullable=False, default=0),
    sa.Column("n_reprocessed", sa.Integer, nullable=False, default=0),
    sa.Column("n_pending", sa.Integer, nullable=False, default=0),
)
exposures = sa.Table(
    "exposures", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("expname", sa.String(256), nullable=False, unique=True),
    sa.Column("observatory", sa.String(16), nullable=False),
    sa.Column("program", sa.Integer, nullable=False),
    sa.Column("instrument", sa.String(32), nullable=False),
    sa.Column("detector", sa.String(32), nullable=False),
    sa.Column("exp_type", sa.String(32), nullable=False),
    sa.Column("start_time", sa.String(32), nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Index("ix_exposures_program", "observatory", "program"),
)
products = sa.Table(
    "products", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("observatory", sa.String(16), nullable=False),
    sa.Column("program", sa.Integer, nullable=False),
    sa.Column("category", sa.String(8), nullable=False),
    sa.Column("members_digest", sa.String(32), nullable=False),
    sa.Column("members", sa.Text, nullable=False),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("date_obs", sa.String(32), nullable=False),
    sa.Column("created", sa.String(32), nullable=False),
    sa.Column("updated", sa.String(32), nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
)
training = sa.Table(
    "training", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("product", sa.String(256), nullable=False, unique=True),
    sa.Column("peak_memory_mb", sa.Float),
    sa.Column("wall_seconds", sa.Float),
    sa.Column("image_size_kb", sa.Float),
    sa.Column("cost_source", sa.Text, nullable=False),
    sa.Column("cost_digest", sa.String(32), nullable=False),
    sa.Column("n_reprocessed", sa.Integer, nullable=False, default=0),
    sa.Column("trained", sa.String(32), nullable=False),
    sa.Column("updated", sa.String(32), nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
)
pending = sa.Table(
    "pending", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("first_run_id", sa.Integer, nullable=False),
    sa.Column("last_run_id", sa.Integer, nullable=False),
    sa.UniqueConstraint("kind", "name", name="uq_pending_kind_name"),
)
encodings = sa.Table(
    "encodings", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("feature", sa.String(32), nullable=False),
    sa.Column("value", sa.String(128), nullable=False),
    sa.Column("code", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.UniqueConstraint("feature", "value", name="uq_encodings_value"),
    sa.UniqueConstraint("feature", "code", name="uq_encodings_code"),
)


class DatabaseError(CalpipeError, RuntimeError):
    """A database that cannot be used as asked; the message is one line."""


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dumps(obj):
    """JSON text with sorted keys, so equal content gives equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def resolve_url(database=None):
    """A SQLAlchemy URL from a URL, a file path, ``$CALPIPE_DATABASE_URL`` or the default file."""
    database = database or os.environ.get(URL_ENV) or DEFAULT_DATABASE
    database = os.fspath(database)
    if "://" in database:
        return database
    return f"sqlite:///{Path(database).expanduser().resolve()}"


def _safe_url(url):
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database>"


class TrainingDB:
    """An open training database. ``TrainingDB(url_or_path)``; close with :meth:`close`."""

    def __init__(self, database=None, *, create=True):
        self.url = resolve_url(database)
        self.shown = _safe_url(self.url)
        file = sa.engine.make_url(self.url).database if self.url.startswith("sqlite") else None
        if not create and file and not Path(file).exists():
            # Connecting would create an empty file: a query never creates anything.
            raise DatabaseError(f"{self.shown}: no such database file")
        try:
            if self.url.startswith("sqlite"):
                self.engine = sa.create_engine(self.url, connect_args={"timeout": 120})
                _serialise_sqlite_writers(self.engine)
            else:
                self.engine = sa.create_engine(self.url, pool_pre_ping=True)
            self.dialect = self.engine.dialect.name
            self._open(create)
        except DatabaseError:
            raise
        except ModuleNotFoundError as exc:
            raise DatabaseError(f"{self.shown}: database driver missing ({exc.name}); install calpipe[postgres]") from None
        except sa.exc.SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise DatabaseError(f"{self.shown}: cannot open database ({reason})") from None

    def _open(self, create):
        with self.engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
        if "calpipe_meta" not in tables:
            if not create or tables:
                # Another application's database: left exactly as it is.
                raise DatabaseError(f"{self.shown}: not a calpipe training database (no calpipe_meta table"
                                    f"{'; it holds other tables' if tables else ''})")
            with self.transaction() as conn:
                metadata.create_all(conn)
                for key, value in (("schema_version", SCHEMA_VERSION), ("encoding_version", 0)):
                    conn.execute(_upsert(self.dialect, meta_table, ["key"], {"key": key, "value": str(value)}, nothing=True))
        version = self.get_meta("schema_version")
        if version != str(SCHEMA_VERSION):
            raise DatabaseError(
                f"{self.shown}: database schema version {version}, this calpipe needs {SCHEMA_VERSION}"
            )

    def close(self):
        self.engine.dispose()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextmanager
    def transaction(self):
        """One write transaction, serialised against other writers; rolled back on error."""
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            yield conn

    def get_meta(self, key, conn=None):
        stmt = sa.select(meta_table.c.value).where(meta_table.c.key == key)
        if conn is not None:
            return conn.execute(stmt).scalar()
        with self.engine.connect() as c:
            return c.execute(stmt).scalar()

    def counts(self):
        with self.engine.connect() as conn:
            out = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                   for t in (exposures, products, training, pending, encodings, runs)}
            for kind in ("product", "cost"):
                out[f"pending_{kind}"] = conn.execute(
                    sa.select(sa.func.count()).select_from(pending).where(pending.c.kind == kind)
                ).scalar()
        return out

    def recent_runs(self, limit=5):
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs).order_by(runs.c.id.desc()).limit(limit)).mappings()
            return [dict(r) for r in rows]

    def encoding_table(self, conn=None):
        """``{feature: {value: code}}``."""
        stmt = sa.select(encodings.c.feature, encodings.c.value, encodings.c.code)
        table = {}
        with (self.engine.connect() if conn is None else _nullcontext(conn)) as c:
            for feature, value, code in c.execute(stmt):
                table.setdefault(feature, {})[value] = code
        return table


@contextmanager
def _nullcontext(conn):
    yield conn


def _serialise_sqlite_writers(engine):
    # pysqlite's own transaction handling defers BEGIN; take the write lock up front
    # instead, so concurrent ingests queue rather than fail on upgrade.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _insert_for(dialect):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise DatabaseError(f"unsupported database dialect {dialect!r} (SQLite or PostgreSQL)")
    return insert


def _upsert(dialect, table, keys, rows, update=(), nothing=False):
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET update-columns (or DO NOTHING)."""
    stmt = _insert_for(dialect)(table).values(rows)
    if nothing or not update:
        return stmt.on_conflict_do_nothing(index_elements=keys)
    return stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update})


def upsert_many(conn, dialect, table, keys, rows, update=(), chunk=500):
    """Upsert ``rows`` (dicts with the same keys) in chunks; returns nothing."""
    for i in range(0, len(rows), chunk):
        conn.execute(_upsert(dialect, table, keys, rows[i:i + chunk], update))


def assign_codes(conn, dialect, values_by_feature, run_version):
    """Codes for every (feature, value); new values get the next code of their feature.

    ``"NONE"`` (a missing value) is always code 0. Returns ``(table, added)`` where
    ``table`` is ``{feature: {value: code}}`` for the requested values and ``added`` the
    number of new rows, which were recorded with version ``run_version``.
    """
    table, added = {}, 0
    for feature in sorted(values_by_feature):
        wanted = sorted(set(values_by_feature[feature]))
        known = dict(conn.execute(
            sa.select(encodings.c.value, encodings.c.code).where(encodings.c.feature == feature)
        ).all())
        next_code = max([c for c in known.values()] + [0]) + 1
        new_rows = []
        for value in wanted:
            if value in known:
                continue
            code = 0 if value == "NONE" else next_code
            next_code += value != "NONE"
            known[value] = code
            new_rows.append({"feature": feature, "value": value, "code": code, "version": run_version})
        if new_rows:
            conn.execute(_insert_for(dialect)(encodings).values(new_rows))
            added += len(new_rows)
        table[feature] = {v: known[v] for v in wanted}
    return table, added


__all__ = [
    "DatabaseError", "SCHEMA_VERSION", "TrainingDB", "assign_codes", "dumps", "encodings",
    "exposures", "ingest_runs", "meta_table", "now", "pending", "products", "resolve_url",
    "runs", "training", "upsert_many",
]
ingest_runs = runs
