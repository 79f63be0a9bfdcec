"""Predicting what products will cost, and the memory a batch task should reserve."""

from dataclasses import dataclass, field
from pathlib import Path

from calpipe.associations import naming
from calpipe.associations.asn import load_asn, member_paths
from calpipe.associations.pool import group_products, load_pool, read_exposure
from calpipe.training.db import DatabaseError
from calpipe.training.scrub import product_features

from .features import encode_row, outside
from .store import latest, open_database

CATEGORY_OF_ASN_TYPE = {asn_type: category for category, asn_type in naming.ASN_TYPE.items()}


@dataclass
class Prediction:
    """Predicted cost of one product. Memory in MB, wall time in seconds."""

    product: str
    family: str
    model: str | None = None  # model id, None when the family has no model
    peak_memory_mb: float | None = None
    peak_memory_mb_upper: float | None = None
    wall_seconds: float | None = None
    wall_seconds_upper: float | None = None
    outside: list = field(default_factory=list)  # features outside the training range

    def as_dict(self):
        return dict(self.__dict__)


def products_of_asn(path):
    """``[(name, family, exposures), ...]`` for each product of an association file."""
    asn = load_asn(path)
    out = []
    for product, paths in zip(asn["products"], member_paths(asn, path)):
        exposures = [read_exposure(p) for p in paths]
        family = CATEGORY_OF_ASN_TYPE.get(asn["asn_type"]) or _family(exposures[0]) or "image"
        out.append((product["name"], family, exposures))
    return out


def products_of_pool(source):
    """``[(name, family, exposures), ...]`` for the products a pool (folder or table) makes."""
    return [(p.name, p.category, p.exposures) for p in group_products(load_pool(source))]


def predict_products(products, models):
    """A :class:`Prediction` per ``(name, family, exposures)``; ``models``: ``{family: ResourceModel|None}``."""
    out = []
    for name, family, exposures in products:
        pred = Prediction(product=name, family=family)
        model = models.get(family)
        if model is not None:
            row, unseen = encode_row(product_features(exposures), model.encodings)
            values = model.predict(row[None, :])
            pred.model = model.id
            for target, (point, upper) in values.items():
                setattr(pred, target, float(point[0]))
                setattr(pred, f"{target}_upper", float(upper[0]))
            pred.outside = [f"{u} (value not seen in training)" for u in unseen] + outside(row, model.ranges)
        out.append(pred)
    return out


_cache = {}


def _latest_cached(database, family):
    model = latest(database, family)
    if model is None:
        return None
    key = (database.url, model.id, model.checksum)
    return _cache.setdefault(key, model)


def _family(exposure):
    """The product family an exposure's first product falls in, or None when it makes none."""
    rule = naming.rule_of(exposure)
    return naming.category_of(exposure, rule) if rule else None


def reservation_mb(members, *, database=None, family=None):
    """Memory to reserve for calibrating a product: the resource model's upper bound.

    Parameters
    ----------
    members : sequence of path-like or dict
        The Level-1 exposures the task calibrates: their files (``*_uncal.asdf`` or
        ``*_uncal.fits``), or their normalised records
        (:func:`calpipe.associations.pool.read_exposure`). For a task that calibrates
        one member of an association, pass that member alone.
    database : str, optional
        Training database URL or SQLite path (default ``$CALPIPE_DATABASE_URL``, else
        ``./calpipe-training.db``).
    family : {"image", "spec", "tac"}, optional
        The product family; by default that of the first member.

    Returns
    -------
    (float, str) or None
        The upper-bound peak memory in MB and the id of the model that gave it
        (``"image/v3"``); None when no model exists for the family, when the database
        has no models, or when a feature lies outside the model's training range (the
        caller then falls back to its size rule).

    Raises
    ------
    calpipe.model.ModelError
        The stored model was altered (checksum) or is malformed.
    calpipe.associations.pool.PoolError
        A member file cannot be read.
    """
    exposures = [m if isinstance(m, dict) else read_exposure(Path(m)) for m in members]
    if not exposures:
        raise ValueError("reservation_mb needs at least one member")
    family = family or _family(exposures[0]) or "image"
    try:
        db = open_database(database)
    except DatabaseError:
        return None  # no training database: no model
    with db:
        model = _latest_cached(db, family)
    if model is None:
        return None
    (pred,) = predict_products([("task", family, exposures)], {family: model})
    if pred.outside:
        return None
    return pred.peak_memory_mb_upper, model.id


__all__ = ["Prediction", "predict_products", "products_of_asn", "products_of_pool", "reservation_mb"]
