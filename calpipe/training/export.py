"""CSV exports of the training database, in the layout model-training code reads.

``training.csv``   every trained product: ``dname`` (product name), ``category``,
                   ``date_obs``, the raw features (:data:`calpipe.training.scrub.FEATURES`),
                   the targets (:data:`TARGETS`), ``n_reprocessed``, ``trained``, ``updated``.
``ingest.csv``     every product known, trained or not: ``dname``, ``category``, ``date_obs``,
                   ``status`` (``trained`` or ``pending``), the raw features.
``train-image.csv``, ``train-spec.csv``, ``train-tac.csv``
                   trained products of one family (imaging; spectroscopy; time series, AMI
                   and coronagraphy): ``dname``, the encoded features, the targets.
``rem-image.csv``, ``rem-spec.csv``, ``rem-tac.csv``
                   products still waiting for a cost, encoded the same way (to predict).

Encoded features replace each categorical value by its code from the database's encoding
table; missing numbers are 0 in the encoded files.
"""

import csv
import json
import math
from pathlib import Path

import sqlalchemy as sa

from calpipe.atomic import atomic_path

from . import db as D
from .scrub import CATEGORICAL, FEATURES, encode

TARGETS = ("peak_memory_mb", "wall_seconds", "imagesize")
FAMILIES = ("image", "spec", "tac")
TRAINING_COLUMNS = ("dname", "category", "date_obs", *FEATURES, *TARGETS, "n_reprocessed", "trained", "updated")
INGEST_COLUMNS = ("dname", "category", "date_obs", "status", *FEATURES)
ENCODED_COLUMNS = ("dname", *FEATURES)
TRAIN_COLUMNS = (*ENCODED_COLUMNS, *TARGETS)


def _write_csv(path, columns, rows):
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in rows:
            w.writerow(["" if row.get(c) is None else row.get(c) for c in columns])


def _zero_nan(row):
    return {k: (0.0 if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def export(database, out_dir):
    """Write every export CSV into ``out_dir``; return ``{file name: row count}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with database.engine.connect() as conn:
        q = sa.select(
            D.products.c.name, D.products.c.category, D.products.c.date_obs, D.products.c.features,
            D.training.c.peak_memory_mb, D.training.c.wall_seconds, D.training.c.image_size_kb,
            D.training.c.n_reprocessed, D.training.c.trained, D.training.c.updated,
        ).select_from(D.products.outerjoin(D.training, D.training.c.product == D.products.c.name)
                      ).order_by(D.products.c.name)
        rows = conn.execute(q).all()
        table = database.encoding_table(conn)
    trained, ingest_rows = [], []
    encoded = {f"{kind}-{fam}.csv": [] for kind in ("train", "rem") for fam in FAMILIES}
    for name, category, date_obs, feats_text, peak, wall, size, nrep, t_at, u_at in rows:
        feats = json.loads(feats_text)
        is_trained = t_at is not None
        base = {"dname": name, "category": category, "date_obs": date_obs, **feats}
        ingest_rows.append({**base, "status": "trained" if is_trained else "pending"})
        targets = {"peak_memory_mb": peak, "wall_seconds": wall, "imagesize": size}
        enc = {"dname": name, **_zero_nan(encode(feats, _complete(table, feats)))}
        if is_trained:
            trained.append({**base, **targets, "n_reprocessed": nrep, "trained": t_at, "updated": u_at})
            encoded[f"train-{category}.csv"].append({**enc, **targets})
        else:
            encoded[f"rem-{category}.csv"].append(enc)
    counts = {}
    _write_csv(out_dir / "training.csv", TRAINING_COLUMNS, trained)
    counts["training.csv"] = len(trained)
    _write_csv(out_dir / "ingest.csv", INGEST_COLUMNS, ingest_rows)
    counts["ingest.csv"] = len(ingest_rows)
    for fname, frows in encoded.items():
        _write_csv(out_dir / fname, TRAIN_COLUMNS if fname.startswith("train") else ENCODED_COLUMNS, frows)
        counts[fname] = len(frows)
    return counts


def _complete(table, feats):
    # Every stored product was encoded in the run that stored it; a missing code means the
    # database was edited by hand, which the export should say rather than guess.
    for k in CATEGORICAL:
        if str(feats[k]) not in table.get(k, {}):
            raise D.DatabaseError(f"no encoding for {k}={feats[k]!r}; re-ingest the product")
    return table
