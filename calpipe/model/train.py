"""Training the resource model: cross-validated gradient boosting per family and target.

For each target (peak memory, wall time) of a product family the point estimate is a *size
law* times a learnt correction:

* the size law is ``c0 + c1 exposure_pixels + c2 n_pixels + c3 input_size_kb`` with
  non-negative coefficients (non-negative least squares on the target): a floor (the
  imported code, ~250 MB for memory) plus terms in what the arrays scale with. It
  extrapolates to larger products, which trees cannot;
* a ``HistGradientBoostingRegressor`` (squared error) learns the logarithm of the target
  over the law, so its errors are relative. Point = law x ``exp(prediction)``.

The upper bound for sizing is normalised conformal prediction with a scale per *region* of
the prediction (Mondrian bins): the out-of-fold log residuals r are grouped into up to
:data:`MAX_REGIONS` bins of the predicted log target (equal counts, at least
:data:`REGION_ROWS` rows each); each region's scale s is the mean absolute residual in it;
the margin q is the ``ceil((n + 1)(1 - UNDER_TARGET))``-th smallest of the scores r / s over
all rows, and the bound is ``point x exp(q s(region))``. A region of small products, whose
memory is mostly the fixed floor, gets a narrow bound; a region of large products, whose
cost scatters more, a wide one, instead of every product paying the widest region's margin.

Cross-validation is k-fold. The held-out upper bound of fold i uses regions, scales and a
margin chosen from the out-of-fold residuals of the *other* folds only (cross-conformal),
so the reported under-prediction rate is measured on runs that chose nothing. The naive
baseline on the same folds scales the target with the input size: its point is the median
target per kB of input (training part) times the input size, its upper bound the same
conformal quantile of that ratio.

Metrics per target, over the held-out predictions of all folds: ``rmse`` (of the point, in
the target's units), ``mdape`` (median absolute percentage error of the point),
``under_rate`` (fraction of runs above the upper bound) and ``over_allocation`` (mean of
upper / measured - 1).
"""

import hashlib
import math

import numpy as np

from calpipe.training.db import now

from .features import FEATURE_VERSION, FEATURES, SIZE_FEATURE, TARGETS, feature_ranges, training_rows
from .law import law_columns, region_scale, upper_log
from .trees import dump_ensemble

UNDER_TARGET = 0.02
MIN_ROWS = 20
FOLDS = 5
MAX_REGIONS = 4
REGION_ROWS = 40
_SIZE = FEATURES.index(SIZE_FEATURE)


class TrainingError(ValueError):
    """Training data that cannot make a model; the message is one line."""


def _regressor(n_rows, seed):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        learning_rate=0.1,
        max_iter=100, max_leaf_nodes=15, min_samples_leaf=max(3, min(20, n_rows // 25)),
        l2_regularization=1e-3, early_stopping=False, random_state=seed,
    )


def conformal_margin(residuals, rate=UNDER_TARGET):
    """The ``ceil((n + 1) (1 - rate))``-th smallest residual (the largest if that is past n)."""
    r = np.sort(np.asarray(residuals, float))
    k = min(r.size, math.ceil((r.size + 1) * (1 - rate)))
    return float(r[k - 1])


def fit_law(X, y):
    """Non-negative coefficients of the size law for target ``y`` (least squares)."""
    from scipy.optimize import nnls

    A = law_columns(X)
    scale = np.maximum(A.max(axis=0), 1e-12)  # columns of 1 to 1e7: solve on comparable scales
    coef, _ = nnls(A / scale, y)
    coef = coef / scale
    if coef[0] <= 0:  # keep the law positive everywhere: a floor of a hundredth of the smallest
        coef[0] = 0.01 * float(np.min(y))
    return coef


def regions(log_point, residuals):
    """``(edges, scales)`` of the prediction regions (see the module notes)."""
    n = len(residuals)
    k = max(1, min(MAX_REGIONS, n // REGION_ROWS))
    edges = np.quantile(log_point, np.arange(1, k) / k) if k > 1 else np.empty(0)
    which = np.searchsorted(edges, log_point)
    scales = np.array([np.mean(np.abs(residuals[which == j])) if np.any(which == j) else 0.0 for j in range(k)])
    floor = max(1e-3, 0.1 * float(np.mean(np.abs(residuals))))  # no region trusted to be exact
    return edges, np.maximum(scales, floor)


def fit_bound(log_point, residuals, rate=UNDER_TARGET):
    """``{"edges", "scales", "margin"}``: the region-scaled conformal bound from held-out residuals."""
    edges, scales = regions(log_point, residuals)
    margin = conformal_margin(residuals / region_scale(edges, scales, log_point), rate)
    return {"edges": edges.tolist(), "scales": scales.tolist(), "margin": margin}


class PointModel:
    """Size law times a boosted correction, fitted on rows ``X``, ``y``; predicts log targets."""

    def __init__(self, X, y, seed):
        self.law = fit_law(X, y)
        self.trees = _regressor(len(y), seed).fit(X, np.log(y) - np.log(law_columns(X) @ self.law))

    def predict_log(self, X):
        return np.log(np.maximum(law_columns(X) @ self.law, 1e-12)) + self.trees.predict(X)


def _folds(n, k, seed):
    from sklearn.model_selection import KFold

    return list(KFold(n_splits=min(k, n), shuffle=True, random_state=seed).split(np.arange(n)))


def _baseline(X, y, tr):
    """Point ratio and upper ratio (target per kB of input) from rows ``tr``."""
    size = X[tr, _SIZE]
    ok = size > 0
    ratio = y[tr][ok] / size[ok]
    if ratio.size == 0:
        return None
    return float(np.median(ratio)), math.exp(conformal_margin(np.log(ratio)))


def _baseline_predict(ratios, X, y_train):
    size = X[:, _SIZE]
    fallback = float(np.median(y_train))
    if ratios is None:
        return np.full(len(X), fallback), np.full(len(X), float(np.max(y_train)))
    point, upper = ratios
    return np.where(size > 0, point * size, fallback), np.where(size > 0, upper * size, float(np.max(y_train)))


def metrics(measured, point, upper):
    """RMSE, median absolute percentage error, under-prediction rate, mean over-allocation."""
    measured, point, upper = (np.asarray(a, float) for a in (measured, point, upper))
    return {
        "rmse": float(np.sqrt(np.mean((point - measured) ** 2))),
        "mdape": float(np.median(np.abs(point - measured) / measured)),
        "under_rate": float(np.mean(measured > upper)),
        "over_allocation": float(np.mean(upper / measured - 1)),
        "n": int(measured.size),
    }


def cross_validate(X, y, folds=FOLDS, seed=0):
    """Held-out metrics of the model and of the baseline on the same folds.

    Returns ``(model_metrics, baseline_metrics, (log_point, residuals))``: the out-of-fold
    log predictions and log residuals (measured minus predicted), which set the final bound.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # see train_family
        return _cross_validate(X, y, folds, seed)


def _cross_validate(X, y, folds, seed):
    ly = np.log(y)
    splits = _folds(len(y), folds, seed)
    log_point = np.empty_like(y)
    base_point, base_upper = np.empty_like(y), np.empty_like(y)
    for tr, te in splits:
        log_point[te] = PointModel(X[tr], y[tr], seed).predict_log(X[te])
        base_point[te], base_upper[te] = _baseline_predict(_baseline(X, y, tr), X[te], y[tr])
    residuals = ly - log_point
    upper = np.empty_like(y)
    for _, te in splits:
        others = np.ones(len(y), bool)
        others[te] = False
        upper[te] = np.exp(upper_log(fit_bound(log_point[others], residuals[others]), log_point[te]))
    model_m = metrics(y, np.exp(log_point), upper)
    return model_m, metrics(y, base_point, base_upper), (log_point, residuals)


def train_family(database, family, folds=FOLDS, seed=0, progress=None):
    """Cross-validate and fit both targets of ``family``; return a model record (not stored).

    Fits run on one thread: on a few thousand rows OpenMP threads gain nothing, and on a
    busy machine they cost a factor of ten or more (each waits for the slowest).

    Raises :class:`TrainingError` when the family has fewer than :data:`MIN_ROWS` rows
    with a positive measured value of every target.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _train_family(database, family, folds, seed, progress or (lambda message: None))


def _train_family(database, family, folds, seed, progress):
    names, X, targets = training_rows(database, family)
    known = np.ones(len(names), bool)
    for t in TARGETS:
        known &= np.isfinite(targets[t]) & (targets[t] > 0)
    if known.sum() < MIN_ROWS:
        raise TrainingError(f"family {family}: {int(known.sum())} product(s) with measured peak memory and "
                            f"wall time, at least {MIN_ROWS} needed")
    names = [n for n, k in zip(names, known) if k]
    X = X[known]
    record_targets, record_metrics = {}, {}
    for t in TARGETS:
        y = targets[t][known]
        progress(f"{family} {t}: {folds}-fold cross-validation on {len(y)} products")
        model_m, base_m, (log_point, residuals) = cross_validate(X, y, folds, seed)
        point = PointModel(X, y, seed)
        record_targets[t] = {"law": point.law.tolist(), "point": dump_ensemble(point.trees),
                             "bound": fit_bound(log_point, residuals)}
        record_metrics[t] = {"model": model_m, "baseline": base_m}
    return {
        "family": family,
        "created": now(),
        "code_version": _code_version(),
        "feature_version": FEATURE_VERSION,
        "features": list(FEATURES),
        "encoding_version": int(database.get_meta("encoding_version")),
        "encodings": database.encoding_table(),
        "ranges": feature_ranges(X),
        "n_rows": len(names),
        "rows_digest": hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16],
        "folds": folds,
        "under_target": UNDER_TARGET,
        "metrics": record_metrics,
        "targets": record_targets,
    }


def _code_version():
    from calpipe import __version__

    return __version__
