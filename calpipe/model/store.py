"""Stored resource models: versioned records in the training database, and model files.

A *model record* is a JSON-ready dict::

    {"family": "image", "version": 3, "created": "...Z", "code_version": "0.1.0",
     "feature_version": 2, "features": [...], "encoding_version": 7,
     "encodings": {feature: {value: code}}, "ranges": {feature: [min, max] or [codes]},
     "n_rows": 212, "rows_digest": "...", "metrics": {...},
     "targets": {"peak_memory_mb": {"law": [c0, c1, c2, c3], "point": ensemble,
                                    "bound": {"edges": [...], "scales": [...], "margin": 2.1}}, ...}}

The log point estimate is the log of the size law (``law`` times ``1`` and the
:data:`~calpipe.model.features.LAW_FEATURES`) plus the ensemble, a numeric tree dump of
:mod:`calpipe.model.trees`; the upper bound adds ``margin`` times the scale of the region
(between ``edges``) the log point falls in (see :mod:`calpipe.model.train`). Every number
is checked on loading. The record's checksum is the SHA-256 of its canonical JSON
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

from .features import FEATURE_VERSION, FEATURES, LAW_FEATURES, TARGETS
from .law import law_columns, upper_log
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
                self.ensembles[target] = (load_ensemble(spec["point"]), _law(spec["law"]), _bound(spec["bound"]))
        except (EnsembleError, KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model {self.id}: malformed ({exc}); retrain with 'calpipe model train'") from None

    def predict(self, X):
        """``{target: (point, upper)}`` arrays for feature rows ``X``, in MB and seconds."""
        import numpy as np

        out = {}
        for target, (ensemble, law, bound) in self.ensembles.items():
            log_point = np.log(np.maximum(law_columns(X) @ law, 1e-12)) + ensemble.predict(X)
            out[target] = (np.exp(log_point), np.exp(upper_log(bound, log_point)))
        return out


def _law(values):
    """The size law's coefficients, checked: finite, non-negative, one per column."""
    import numpy as np

    law = np.asarray(values, dtype=np.float64)
    if law.shape != (1 + len(LAW_FEATURES),) or not np.all(np.isfinite(law)) or np.any(law < 0) or law[0] <= 0:
        raise ValueError("size law coefficients")
    return law


def _bound(spec):
    """The upper bound's regions, checked: sorted finite edges, one positive scale more."""
    import numpy as np

    edges = np.asarray(spec["edges"], dtype=np.float64).reshape(-1)
    scales = np.asarray(spec["scales"], dtype=np.float64).reshape(-1)
    margin = float(spec["margin"])
    if scales.size != edges.size + 1 or not (np.all(np.isfinite(edges)) and np.all(np.isfinite(scales))
                                             and np.isfinite(margin)) \
            or np.any(np.diff(edges) < 0) or np.any(scales <= 0):
        raise ValueError("upper bound regions")
    return {"edges": edges, "scales": scales, "margin": margin}


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
