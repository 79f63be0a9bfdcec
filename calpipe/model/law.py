"""Evaluating a trained model's size law and upper bound (numpy only; see :mod:`.train`)."""

import numpy as np

from .features import FEATURES, LAW_FEATURES

_LAW = [FEATURES.index(k) for k in LAW_FEATURES]


def law_columns(X):
    """The size law's design matrix: a column of ones, then :data:`LAW_FEATURES` of rows ``X``."""
    X = np.asarray(X, dtype=np.float64)
    return np.column_stack([np.ones(len(X)), X[:, _LAW]])


def region_scale(edges, scales, log_point):
    """The scale of the region each log prediction falls in."""
    return np.asarray(scales)[np.searchsorted(np.asarray(edges), log_point)]


def upper_log(bound, log_point):
    """Log of the upper bound for log predictions ``log_point`` under a bound ``{edges, scales, margin}``."""
    return log_point + bound["margin"] * region_scale(bound["edges"], bound["scales"], log_point)
