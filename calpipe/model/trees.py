"""Gradient-boosted trees as plain numbers: written from a fitted scikit-learn model, read
back and evaluated with numpy alone.

A stored ensemble is a dict of lists (JSON-ready): ``baseline`` (the raw prediction before
any tree), ``n_features``, ``tree_start`` (index of each tree's root in the node arrays) and
one entry per node field: ``feature`` (int), ``threshold`` (float), ``missing_left`` (0/1),
``left``, ``right`` (child indices within the tree), ``leaf`` (0/1), ``value`` (float; a
leaf's contribution). A sample goes left when its value is ``<= threshold``, and where it is
NaN when ``missing_left`` is set. The prediction is ``baseline`` plus the leaf values
reached in every tree, in the units of the fitted target (identity link: squared-error and
quantile losses).

Reading never runs code: the text is JSON, the numbers become numpy arrays of fixed dtypes,
and :func:`load_ensemble` checks every index (children after their parent, features in
range, finite values) so that a corrupt ensemble is refused instead of looping or reading
out of bounds.
"""

import numpy as np

FIELDS = {
    "feature": np.int64, "threshold": np.float64, "missing_left": np.bool_,
    "left": np.int64, "right": np.int64, "leaf": np.bool_, "value": np.float64,
}


class EnsembleError(ValueError):
    """A stored ensemble that is not well formed; the message is one line."""


def dump_ensemble(estimator):
    """The trees of a fitted ``HistGradientBoostingRegressor`` as a JSON-ready dict.

    Only numeric splits are supported (fit without ``categorical_features``).
    """
    columns = {k: [] for k in FIELDS}
    starts = []
    for iteration in estimator._predictors:
        (tree,) = iteration  # one tree per iteration for a regressor
        nodes = tree.nodes
        if nodes["is_categorical"].any():
            raise EnsembleError("categorical splits cannot be stored; fit with numeric features only")
        starts.append(len(columns["value"]))
        columns["feature"].extend(int(v) for v in nodes["feature_idx"])
        columns["threshold"].extend(float(v) for v in nodes["num_threshold"])
        columns["missing_left"].extend(int(v) for v in nodes["missing_go_to_left"])
        columns["left"].extend(int(v) for v in nodes["left"])
        columns["right"].extend(int(v) for v in nodes["right"])
        columns["leaf"].extend(int(v) for v in nodes["is_leaf"])
        columns["value"].extend(float(v) for v in nodes["value"])
    return {
        "baseline": float(np.ravel(estimator._baseline_prediction)[0]),
        "n_features": int(estimator.n_features_in_),
        "tree_start": starts,
        **columns,
    }


class Ensemble:
    """Evaluate a stored ensemble on feature rows (numpy only)."""

    def __init__(self, baseline, n_features, tree_start, arrays):
        self.baseline = baseline
        self.n_features = n_features
        self.tree_start = tree_start
        self.arrays = arrays

    def predict(self, X):
        """Raw predictions for ``X`` (n_samples x n_features), in the fitted target's units."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise EnsembleError(f"expected rows of {self.n_features} features, got shape {X.shape}")
        a = self.arrays
        n = X.shape[0]
        node = np.broadcast_to(self.tree_start, (n, self.tree_start.size)).copy()
        rows = np.arange(n)[:, None]
        # Children always come after their parent (checked on load), so this ends.
        while True:
            active = ~a["leaf"][node]
            if not active.any():
                break
            x = X[rows, a["feature"][node]]
            go_left = np.where(np.isnan(x), a["missing_left"][node], x <= a["threshold"][node])
            # Column j walks tree j; child indices are relative to the tree's root.
            child = np.where(go_left, a["left"][node], a["right"][node]) + self.tree_start
            node = np.where(active, child, node)
        return self.baseline + a["value"][node].sum(axis=1)


def load_ensemble(data):
    """An :class:`Ensemble` from a dict written by :func:`dump_ensemble`, checked throughout."""
    if not isinstance(data, dict):
        raise EnsembleError("ensemble is not a mapping")
    try:
        baseline = float(data["baseline"])
        n_features = int(data["n_features"])
        starts = np.asarray(data["tree_start"], dtype=np.int64)
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in FIELDS}
    except KeyError as exc:
        raise EnsembleError(f"ensemble lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise EnsembleError(f"ensemble holds a non-numeric value ({exc})") from None
    n_nodes = arrays["value"].size
    if any(a.ndim != 1 or a.size != n_nodes for a in arrays.values()) or starts.ndim != 1:
        raise EnsembleError("ensemble node arrays differ in length")
    if not all(np.isfinite(a).all() for a in arrays.values()) or not np.isfinite(baseline):
        raise EnsembleError("ensemble holds a non-finite number")
    if n_features < 1 or starts.size == 0 or starts[0] != 0 or np.any(np.diff(starts) <= 0) or starts[-1] >= n_nodes:
        raise EnsembleError("ensemble tree offsets are out of order")
    typed = {}
    for k, dtype in FIELDS.items():
        if dtype is not np.float64 and np.any(arrays[k] != np.round(arrays[k])):
            raise EnsembleError(f"ensemble field {k} holds a non-integer")
        typed[k] = arrays[k].astype(dtype)
    ends = np.append(starts[1:], n_nodes)
    index = np.arange(n_nodes)
    local = index - np.repeat(starts, ends - starts)
    size = np.repeat(ends - starts, ends - starts)
    inner = ~typed["leaf"]
    for side in ("left", "right"):
        child = typed[side][inner]
        if np.any(child <= local[inner]) or np.any(child >= size[inner]):
            raise EnsembleError(f"ensemble {side} child index out of range")
    if np.any((typed["feature"][inner] < 0) | (typed["feature"][inner] >= n_features)):
        raise EnsembleError("ensemble feature index out of range")
    return Ensemble(baseline, n_features, starts, typed)
