"""What the resource model learns from: feature rows and targets of the training database.

The features are the training database's product features
(:data:`calpipe.training.scrub.FEATURES`, in that order), categorical values replaced by
their codes and missing numbers by 0, as the training exports write them.
:data:`FEATURE_VERSION` changes whenever this list or its encoding changes; a stored
model records it with the database's categorical encoding version and the codes it saw.
"""

import csv
import math
import tempfile
from pathlib import Path

import numpy as np

from calpipe.training.export import FAMILIES, export
from calpipe.training.scrub import CATEGORICAL, FEATURES

FEATURE_VERSION = 2
TARGETS = ("peak_memory_mb", "wall_seconds")
SIZE_FEATURE = "input_size_kb"  # what the naive baseline scales with
LAW_FEATURES = ("exposure_pixels", "n_pixels", "input_size_kb")  # the size law's terms, see train


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def training_rows(database, family):
    """``(names, X, targets)`` of one family's trained products.

    ``X`` is an ``n x len(FEATURES)`` float array; ``targets`` maps each of :data:`TARGETS`
    to an array with NaN where the cost is unknown. Read through the database's own
    export (``train-<family>.csv``), so the encoding is the one the exports use.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown product family {family!r}; expected one of {', '.join(FAMILIES)}")
    with tempfile.TemporaryDirectory(prefix="calpipe-model-") as tmp:
        export(database, tmp)
        with open(Path(tmp) / f"train-{family}.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    names = [r["dname"] for r in rows]
    X = np.array([[_number(r[k]) for k in FEATURES] for r in rows], dtype=np.float64).reshape(len(rows), len(FEATURES))
    targets = {t: np.array([_number(r[t]) for r in rows], dtype=np.float64) for t in TARGETS}
    return names, X, targets


def encode_row(features, codes):
    """A feature row (float array) from raw product features and ``{feature: {value: code}}``.

    Returns ``(row, unseen)``: a categorical value with no code becomes -1 and is listed in
    ``unseen`` as ``"feature=value"``; a missing number becomes 0, as in the exports.
    """
    row, unseen = [], []
    for k in FEATURES:
        value = features.get(k)
        if k in CATEGORICAL:
            code = codes.get(k, {}).get(str(value))
            if code is None:
                unseen.append(f"{k}={value}")
                code = -1
            row.append(float(code))
        else:
            number = _number(value)
            row.append(0.0 if math.isnan(number) else number)
    return np.array(row, dtype=np.float64), unseen


def feature_ranges(X):
    """``{feature: [min, max]}`` of the numeric features and ``{feature: [codes]}`` of the rest."""
    ranges = {}
    for j, k in enumerate(FEATURES):
        column = X[:, j]
        if k in CATEGORICAL:
            ranges[k] = sorted({int(v) for v in column})
        else:
            ranges[k] = [float(column.min()), float(column.max())]
    return ranges


def outside(row, ranges):
    """Names of the features of ``row`` outside the training ``ranges`` (with the value)."""
    out = []
    for j, k in enumerate(FEATURES):
        bounds = ranges[k]
        if k in CATEGORICAL:
            if row[j] >= 0 and int(row[j]) not in bounds:  # -1: unseen value, see encode_row
                out.append(f"{k} (value not in the training rows)")
        elif not bounds[0] <= row[j] <= bounds[1]:
            out.append(f"{k}={row[j]:g} (trained on {bounds[0]:g}..{bounds[1]:g})")
    return out
