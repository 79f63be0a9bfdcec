"""Stored resource models: versioned records in the training database, and model files.

A *model record* is a JSON-ready dict::

    {"family": "image", "version": 3, "created": "...Z", "code_version": "0.1.0",
     "feature_version": 1, "features": [...], "encoding_version": 7,
     "encodings": {feature: {value: code}}, "ranges": {feature: [min, max] or [codes]},
     "n_rows": 212, "rows_digest": "...", "metrics": {...},
     "targets": {"peak_memory_mb": {"point": ensemble, "upper_margin": 0.05}, ...}}

Ensembles are the numeric tree dumps of :mod:`calpipe.model.trees`, fitted on the natural
logarithm of the target; the upper bound adds ``upper_margin`` to that logarithm. The record's checksum is the SHA-256 of its canonical JSON
(sorted keys, no spaces); it is stored beside the record in the database (table
``resource_models``) and written into an exported file. Loading recomputes it and refuses a
record whose text was altered. Nothing in a record is code: reading is ``json.loads`` and
numeric arrays, so even a record rewritten with a matching checksum can only give wrong
numbers, never run anything.
"""

import hashlib
import json
from pathlib import Path

import sqlalchemy as sa

from calpipe.atomic import atomic_path
from calpipe.errors import CalpipeError
from calpipe.training.db import DatabaseError, TrainingDB, resolve_url

from .features import FEATURE_VERSION, FEATURES, TARGETS
from .trees import EnsembleError, load_ensemble

FILE_FORMAT = "calpipe-resource-model"
FILE_FORMAT_VERSION = 1

model_metadata = sa.MetaData()
resource_models = sa.Table(
    "resource_models", model_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("family", sa.String(8), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created", sa.String(32), nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("checksum", sa.String(64), nullable=False),
    sa.UniqueConstraint("family", "version", name="uq_resource_models_version"),
)


class ModelError(CalpipeError):
    """A resource model that cannot be used (missing, altered, malformed); one line."""


def canonical(record):
    """The canonical JSON text of a record (what the checksum covers)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)


def checksum(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_id(family, version):
    return f"{family}/v{version}"


class ResourceModel:
    """A loaded, verified model record: predicts both targets for feature rows."""

    def __init__(self, record, digest):
        self.record = record
        self.checksum = digest
        self.family = record["family"]
        self.version = int(record["version"])
        self.id = model_id(self.family, self.version)
        self.ranges = record["ranges"]
        self.encodings = record["encodings"]
        self.ensembles = {}
        try:
            for target in TARGETS:
                spec = record["targets"][target]
                self.ensembles[target] = (load_ensemble(spec["point"]), float(spec["upper_margin"]))
        except (EnsembleError, KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model {self.id}: malformed ({exc}); retrain with 'calpipe model train'") from None

    def predict(self, X):
        """``{target: (point, upper)}`` arrays for feature rows ``X``, in MB and seconds."""
        import numpy as np

        out = {}
        for target, (ensemble, margin) in self.ensembles.items():
            raw = ensemble.predict(X)
            out[target] = (np.exp(raw), np.exp(raw + margin))
        return out


def _verify(text, digest, where):
    if checksum(text) != digest:
        raise ModelError(f"{where}: checksum mismatch, the stored model was altered; refusing to load it")
    try:
        record = json.loads(text)
    except ValueError:
        raise ModelError(f"{where}: not valid JSON; refusing to load it") from None
    if not isinstance(record, dict) or record.get("feature_version") != FEATURE_VERSION \
            or record.get("features") != list(FEATURES):
        raise ModelError(f"{where}: made for other features (feature version "
                         f"{record.get('feature_version') if isinstance(record, dict) else '?'}), "
                         f"this calpipe uses version {FEATURE_VERSION}; retrain")
    return ResourceModel(record, digest)


def open_database(database=None):
    """An existing training database (never creates one): a :class:`TrainingDB`."""
    url = resolve_url(database)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        raise DatabaseError(f"{url[len('sqlite:///'):]}: no such database file")
    return TrainingDB(url, create=False)


def _ensure_table(database):
    with database.transaction() as conn:
        model_metadata.create_all(conn, checkfirst=True)


def _has_table(database):
    with database.engine.connect() as conn:
        return sa.inspect(conn).has_table(resource_models.name)


def save(database, record):
    """Store ``record`` as the next version of its family; return its model id."""
    _ensure_table(database)
    with database.transaction() as conn:
        last = conn.execute(sa.select(sa.func.max(resource_models.c.version))
                            .where(resource_models.c.family == record["family"])).scalar()
        record = {**record, "version": (last or 0) + 1}
        text = canonical(record)
        conn.execute(resource_models.insert().values(
            family=record["family"], version=record["version"], created=record["created"],
            n_rows=record["n_rows"], record=text, checksum=checksum(text)))
    return model_id(record["family"], record["version"])


def list_models(database):
    """Every stored model, newest first: dicts with id, family, version, created, n_rows,
    and ``model`` (a :class:`ResourceModel`) or ``error`` (why it cannot be loaded)."""
    if not _has_table(database):
        return []
    with database.engine.connect() as conn:
        rows = conn.execute(sa.select(resource_models).order_by(
            resource_models.c.family, resource_models.c.version.desc())).mappings().all()
    out = []
    for r in rows:
        entry = {k: r[k] for k in ("family", "version", "created", "n_rows")}
        entry["id"] = model_id(r["family"], r["version"])
        try:
            entry["model"] = _verify(r["record"], r["checksum"], f"model {entry['id']} in {database.shown}")
        except ModelError as exc:
            entry["error"] = str(exc)
        out.append(entry)
    return out


def latest(database, family):
    """The newest model of ``family`` (verified), or None when the family has none."""
    if not _has_table(database):
        return None
    with database.engine.connect() as conn:
        row = conn.execute(sa.select(resource_models.c.version, resource_models.c.record, resource_models.c.checksum)
                           .where(resource_models.c.family == family)
                           .order_by(resource_models.c.version.desc()).limit(1)).first()
    if row is None:
        return None
    return _verify(row.record, row.checksum, f"model {model_id(family, row.version)} in {database.shown}")


def get(database, ident):
    """The model ``family/vN`` (or ``family`` for its newest) from ``database``."""
    family, _, version = str(ident).partition("/v")
    if not version:
        model = latest(database, family)
        if model is None:
            raise ModelError(f"{database.shown}: no model of family {family!r}; train one with 'calpipe model train'")
        return model
    if not version.isdigit() or not _has_table(database):
        raise ModelError(f"{database.shown}: no model {ident!r} (expected FAMILY or FAMILY/vN)")
    with database.engine.connect() as conn:
        row = conn.execute(sa.select(resource_models.c.record, resource_models.c.checksum).where(
            (resource_models.c.family == family) & (resource_models.c.version == int(version)))).first()
    if row is None:
        raise ModelError(f"{database.shown}: no model {ident!r}")
    return _verify(row.record, row.checksum, f"model {ident} in {database.shown}")


def export_file(model, path):
    """Write a verified model to ``path`` as one JSON document with its checksum."""
    path = Path(path)
    doc = {"format": FILE_FORMAT, "format_version": FILE_FORMAT_VERSION,
           "checksum": model.checksum, "record": canonical(model.record)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def read_file(path):
    """A verified model from a file written by :func:`export_file`."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path}: not a model file ({type(exc).__name__}); expected a file from 'calpipe model export'") from None
    if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT or not isinstance(doc.get("record"), str) \
            or not isinstance(doc.get("checksum"), str):
        raise ModelError(f"{path}: not a model file; expected a file from 'calpipe model export'")
    return _verify(doc["record"], doc["checksum"], str(path))


__all__ = [
    "ModelError", "ResourceModel", "export_file", "get", "latest", "list_models", "read_file",
    "resource_models", "save",
]
