"""The file-lookup database of an archive: SQLAlchemy Core on SQLite (default) or PostgreSQL.

Tables
------
``archive_meta``        key/value: ``schema_version``.
``roots``               the master table: one row per root name (program, observation,
                        visit, exposure, instrument, detector, optical element, exposure
                        type, start/end time, ``s_region``, first and last ingest).
``datasets``            one row per root x file type x version: relative path, size,
                        checksum, created, ``is_default`` and ``is_last`` flags.
``provenance``          one row per root x version: calpipe and dependency versions, step
                        parameters, reference files with checksums, input checksums,
                        ``meta.cal_step`` and ``meta.resources`` (JSON text).
``meta_<type>``         one per file type with a datamodel schema (``meta_uncal``,
                        ``meta_cal``, ...): ``dataset_id`` and one column per scalar schema
                        keyword (:mod:`calpipe.archive.schema`).
``archive_migrations``  every table created and column added, when, and how many rows
                        were backfilled from the files.

Opening the database brings the ``meta_<type>`` tables up to the schemas: a keyword the
schemas gained becomes a column, filled from the archived files that carry it, in the
same transaction that records the migration.
"""

import os
from pathlib import Path

import sqlalchemy as sa

from calpipe.errors import CalpipeError
from calpipe.training.db import _safe_url, dumps, first_line, locked_transaction, make_engine, now, opening_errors

from .schema import columns_for

SCHEMA_VERSION = 1
DATABASE_NAME = "archive.db"
URL_ENV = "CALPIPE_ARCHIVE_DATABASE_URL"
_LOCK_KEY = 0x63616C61  # "cala": the advisory lock every PostgreSQL archive writer takes
_SQL_TYPES = {"string": sa.Text, "integer": sa.BigInteger, "number": sa.Float, "boolean": sa.Boolean}

metadata = sa.MetaData()

archive_meta = sa.Table(
    "archive_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)
roots = sa.Table(
    "roots", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("root", sa.String(128), nullable=False, unique=True),
    sa.Column("program", sa.String(16), nullable=False),
    sa.Column("observation", sa.Integer),
    sa.Column("visit", sa.Integer),
    sa.Column("exposure", sa.Integer),
    sa.Column("instrument", sa.String(32)),
    sa.Column("detector", sa.String(32)),
    sa.Column("optical_element", sa.String(32)),
    sa.Column("exp_type", sa.String(32)),
    sa.Column("start_time", sa.String(32)),
    sa.Column("end_time", sa.String(32)),
    sa.Column("s_region", sa.Text),
    sa.Column("first_ingest", sa.String(32), nullable=False),
    sa.Column("last_ingest", sa.String(32), nullable=False),
    sa.Index("ix_roots_detector_start", "detector", "start_time"),
    sa.Index("ix_roots_start", "start_time"),
    sa.Index("ix_roots_program", "program"),
)
datasets = sa.Table(
    "datasets", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("root_id", sa.Integer, sa.ForeignKey("roots.id"), nullable=False),
    sa.Column("file_type", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("checksum", sa.String(80), nullable=False),
    sa.Column("created", sa.String(32), nullable=False),
    sa.Column("is_default", sa.Boolean, nullable=False),
    sa.Column("is_last", sa.Boolean, nullable=False),
    sa.UniqueConstraint("root_id", "file_type", "version", name="uq_datasets_root_type_version"),
    sa.Index("ix_datasets_root_version", "root_id", "version"),
)
provenance = sa.Table(
    "provenance", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("root_id", sa.Integer, sa.ForeignKey("roots.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created", sa.String(32), nullable=False),
    sa.Column("calpipe_version", sa.String(32)),
    sa.Column("dependencies", sa.Text, nullable=False),
    sa.Column("parameters", sa.Text, nullable=False),
    sa.Column("ref_files", sa.Text, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("cal_step", sa.Text, nullable=False),
    sa.Column("resources", sa.Text, nullable=False),
    sa.UniqueConstraint("root_id", "version", name="uq_provenance_root_version"),
)
migrations = sa.Table(
    "archive_migrations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("applied", sa.String(32), nullable=False),
    sa.Column("table_name", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("column_name", sa.String(128)),
    sa.Column("column_type", sa.String(16)),
    sa.Column("keyword", sa.String(256)),
    sa.Column("backfilled", sa.Integer, nullable=False, default=0),
)


class ArchiveError(CalpipeError):
    """An archive that cannot be used as asked; the message is one line."""


def resolve_url(folder, database=None):
    """The archive's URL: ``database`` (URL or file), ``$CALPIPE_ARCHIVE_DATABASE_URL``, else
    ``<folder>/archive.db``."""
    database = database or os.environ.get(URL_ENV)
    if database and "://" in os.fspath(database):
        return os.fspath(database)
    path = Path(database) if database else Path(folder) / DATABASE_NAME
    return f"sqlite:///{path.expanduser().resolve()}"


def meta_table_name(file_type):
    return f"meta_{file_type}"


class ArchiveDB:
    """The open database of an archive folder; ``meta_tables`` maps file type -> sa.Table.

    ``read_meta(relative_path)`` reads a stored file's ``meta`` for backfills.
    """

    def __init__(self, url, *, schema_dir=None, read_meta=None, create=True):
        self.url = url
        self.shown = _safe_url(url)
        self.columns = columns_for(schema_dir)
        self._read_meta = read_meta
        file = sa.engine.make_url(url).database if url.startswith("sqlite") else None
        if not create and file and not Path(file).exists():
            # Connecting would create an empty file: a query never creates anything.
            raise ArchiveError(f"{file}: no archive database here (`calpipe archive add` makes one)")
        with opening_errors(self.shown, ArchiveError):
            self.engine = make_engine(url)
            self.dialect = self.engine.dialect.name
            self.meta_tables = {}
            self._open(create)

    def close(self):
        self.engine.dispose()

    def transaction(self):
        """One write transaction, serialised against other writers; rolled back on error."""
        return locked_transaction(self.engine, _LOCK_KEY)

    # -- opening and migrations -----------------------------------------------------------
    def _open(self, create):
        with self.engine.connect() as conn:
            present = sa.inspect(conn).has_table("archive_meta")
        if not present and not create:
            raise ArchiveError(f"{self.shown}: not a calpipe archive (no archive_meta table)")
        with self.transaction() as conn:
            if not present:
                metadata.create_all(conn)
                conn.execute(archive_meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            version = conn.execute(
                sa.select(archive_meta.c.value).where(archive_meta.c.key == "schema_version")
            ).scalar()
            if version != str(SCHEMA_VERSION):
                raise ArchiveError(f"{self.shown}: archive schema version {version}, this calpipe needs {SCHEMA_VERSION}")
            self._migrate(conn)

    def _migrate(self, conn):
        """Create missing ``meta_<type>`` tables; add the columns the schemas gained and backfill them."""
        inspector = sa.inspect(conn)
        for file_type, wanted in self.columns.items():
            name = meta_table_name(file_type)
            if not inspector.has_table(name):
                table = self._meta_table(name, wanted)
                table.create(conn)
                conn.execute(migrations.insert().values(applied=now(), table_name=name, action="create", backfilled=0))
                self.meta_tables[file_type] = table
                continue
            existing = {c["name"] for c in inspector.get_columns(name)}
            added = [c for c in wanted if c.name not in existing]
            kept = [c for c in wanted if c.name in existing]
            for column in added:
                sql_type = _SQL_TYPES[column.kind]().compile(dialect=conn.dialect)
                quote = conn.dialect.identifier_preparer.quote
                conn.execute(sa.text(f"ALTER TABLE {quote(name)} ADD COLUMN {quote(column.name)} {sql_type}"))
            # Columns a schema no longer declares stay in the table (and keep their values).
            table = self._meta_table(name, kept + added, extra=existing - {c.name for c in wanted} - {"dataset_id"})
            self.meta_tables[file_type] = table
            if added:
                counts = self._backfill(conn, file_type, table, added)
                for column in added:
                    conn.execute(migrations.insert().values(
                        applied=now(), table_name=name, action="add_column", column_name=column.name,
                        column_type=column.kind, keyword="meta." + ".".join(column.keys),
                        backfilled=counts[column.name],
                    ))

    def _meta_table(self, name, columns, extra=()):
        table_metadata = sa.MetaData()
        return sa.Table(
            name, table_metadata,
            sa.Column("dataset_id", sa.Integer, primary_key=True),
            *[sa.Column(c.name, _SQL_TYPES[c.kind]) for c in columns],
            *[sa.Column(c, sa.Text) for c in sorted(extra)],
        )

    def _backfill(self, conn, file_type, table, added):
        """Fill new columns from the stored files that carry the keyword; returns counts per column."""
        counts = {c.name: 0 for c in added}
        rows = conn.execute(
            sa.select(datasets.c.id, datasets.c.path).where(datasets.c.file_type == file_type)
        ).all()
        for dataset_id, path in rows:
            meta = self._read_meta(path) if self._read_meta else None
            values = {c.name: c.value_in(meta) for c in added} if meta else {}
            values = {k: v for k, v in values.items() if v is not None}
            if values:
                conn.execute(table.update().where(table.c.dataset_id == dataset_id).values(**values))
                for key in values:
                    counts[key] += 1
        return counts

    def migrations(self):
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(migrations).order_by(migrations.c.id)).mappings()]


__all__ = [
    "ArchiveDB", "ArchiveError", "archive_meta", "datasets", "dumps", "first_line", "meta_table_name", "migrations",
    "now", "provenance", "resolve_url", "roots",
]
