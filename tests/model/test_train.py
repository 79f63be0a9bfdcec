import numpy as np
import pytest

from calpipe.model.features import FEATURES
from calpipe.model.law import upper_log
from calpipe.model.train import conformal_margin, cross_validate, fit_bound, fit_law, metrics


def test_conformal_margin_is_the_rounded_up_rank():
    r = np.arange(1.0, 101.0)
    assert conformal_margin(r, 0.02) == 99.0  # ceil(101 * 0.98) = 99th smallest
    assert conformal_margin(r[:10], 0.02) == 10.0  # past n: the largest


def test_metrics_against_hand_values():
    m = metrics([100, 200], [110, 150], [120, 190])
    assert m["rmse"] == pytest.approx(np.sqrt((10**2 + 50**2) / 2))
    assert m["mdape"] == pytest.approx((0.10 + 0.25) / 2)
    assert m["under_rate"] == 0.5
    assert m["over_allocation"] == pytest.approx((0.2 - 0.05) / 2)


def test_trained_model_beats_the_baseline_on_known_structure(trained_db):
    _, record = trained_db
    mem = record["metrics"]["peak_memory_mb"]
    # Memory is 250 MB plus a term in size x (1 + k/2), with 3% scatter: far from
    # proportional to the input size, which the baseline assumes.
    assert mem["model"]["mdape"] <= 0.5 * mem["baseline"]["mdape"]
    assert mem["model"]["mdape"] < 0.10
    wall = record["metrics"]["wall_seconds"]
    assert wall["model"]["mdape"] < wall["baseline"]["mdape"]


def test_upper_bound_under_predicts_few_held_out_runs(trained_db):
    _, record = trained_db
    for target in ("peak_memory_mb", "wall_seconds"):
        m = record["metrics"][target]["model"]
        assert m["n"] == record["n_rows"]
        # Cross-conformal margin for 2%: binomial scatter on 160 runs allows a little more.
        assert m["under_rate"] <= 0.035, target
    # Memory scatters by 3%: its upper bound must stay close (the 30%).
    assert record["metrics"]["peak_memory_mb"]["model"]["over_allocation"] < 0.30


def test_cross_validation_holds_out_what_it_scores():
    # A target that is pure noise cannot be learnt: held-out error must stay at the noise
    # level (a model scored on its own training rows would look far better).
    rng = np.random.default_rng(7)
    X = rng.uniform(0, 1, (120, 34))
    X[:, FEATURES.index("input_size_kb")] = 1.0  # constant: the baseline predicts the median
    y = np.exp(rng.normal(5, 0.3, 120))
    model_m, base_m, (log_point, residuals) = cross_validate(X, y, folds=4)
    assert model_m["mdape"] > 0.12
    assert residuals.shape == log_point.shape == y.shape


def _measured_runs():
    """The committed measured runs (data/measured-image.csv) as feature rows and targets.

    77 real association runs of `benchmarks/model_training_set.py` (WFI imaging, 256 to
    2048 pixels, 3 to 24 resultants, 1 to 6 members); the features that vary between them,
    every other feature 0 (constant in these runs).
    """
    import csv
    from pathlib import Path

    with open(Path(__file__).parent / "data" / "measured-image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    X = np.zeros((len(rows), len(FEATURES)))
    for j, name in enumerate(FEATURES):
        if name in rows[0]:
            X[:, j] = [float(r[name]) for r in rows]
    return X, {t: np.array([float(r[t]) for r in rows]) for t in ("peak_memory_mb", "wall_seconds")}


def test_memory_bound_on_measured_runs():
    # Cross-validated on real runs: the bound over-allocates at most 30% on average (the
    # issue's target) and the point's median error is at most half the size-proportional
    # baseline's. With 77 runs each fold's margin is the largest of ~62 scaled residuals,
    # which a held-out run exceeds with probability ~1/63: the 2% target is expected, and
    # binomial scatter allows 3 runs of 77 (the whole measured set meets 2%, docs/model.md).
    X, targets = _measured_runs()
    model_m, base_m, _ = cross_validate(X, targets["peak_memory_mb"], folds=5, seed=0)
    assert model_m["n"] == 77
    assert model_m["under_rate"] <= 3 / 77
    assert model_m["over_allocation"] <= 0.30
    assert model_m["mdape"] <= 0.5 * base_m["mdape"]


def test_region_scaled_bound_is_narrow_where_residuals_are_small():
    # Two regions of 40 predictions: residuals of 1% scatter below, 10% above. One global
    # margin would give every product the wide one; the region-scaled bound does not.
    rng = np.random.default_rng(3)
    log_point = np.concatenate([np.full(40, 5.6), np.full(40, 6.6)])
    residuals = np.concatenate([rng.normal(0, 0.01, 40), rng.normal(0, 0.10, 40)])
    bound = fit_bound(log_point, residuals)
    assert len(bound["scales"]) == 2
    lo, hi = upper_log(bound, np.array([5.6, 6.6])) - np.array([5.6, 6.6])
    assert hi > 5 * lo > 0
    # Each region's bound covers its own residuals, the 98% target over all of them.
    covered = residuals <= upper_log(bound, log_point) - log_point
    assert covered.mean() >= 0.98


def test_size_law_recovers_non_negative_coefficients():
    # Memory = 250 MB + 4e-4 MB per readout pixel of the largest member + 1e-4 per pixel
    # in all: the law finds them, and keeps the input-size term at zero.
    rng = np.random.default_rng(5)
    X = np.zeros((60, len(FEATURES)))
    k = rng.integers(1, 7, 60)
    pixels = rng.choice([256, 512, 1024, 2048], 60) ** 2
    X[:, FEATURES.index("exposure_pixels")] = pixels
    X[:, FEATURES.index("n_pixels")] = pixels * k
    X[:, FEATURES.index("input_size_kb")] = pixels * k * rng.integers(3, 25, 60) * 2 / 1024
    y = 250 + 4e-4 * pixels + 1e-4 * pixels * k
    coef = fit_law(X, y)
    assert coef == pytest.approx([250, 4e-4, 1e-4, 0], rel=1e-6, abs=1e-9)
