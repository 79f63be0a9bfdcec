import numpy as np
import pytest

from calpipe.model.features import FEATURES
from calpipe.model.train import conformal_margin, cross_validate, metrics


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
