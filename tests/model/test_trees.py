import json

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from calpipe.model.trees import EnsembleError, dump_ensemble, load_ensemble


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, (300, 4))
    X[::9, 2] = np.nan  # missing values take the side the fit chose
    y = 3 * X[:, 0] + np.sin(6 * X[:, 1]) + rng.normal(0, 0.1, 300)
    models = {loss: HistGradientBoostingRegressor(loss=loss, quantile=0.9 if loss == "quantile" else None,
                                                  max_iter=60, random_state=0).fit(X, y)
              for loss in ("squared_error", "quantile")}
    Xt = rng.uniform(-0.2, 1.2, (200, 4))
    Xt[::4, 2] = np.nan
    Xt[::5, 0] = np.nan
    return models, Xt


@pytest.mark.parametrize("loss", ["squared_error", "quantile"])
def test_stored_trees_predict_what_scikit_learn_predicts(fitted, loss):
    models, Xt = fitted
    text = json.dumps(dump_ensemble(models[loss]))  # through text, as stored
    ensemble = load_ensemble(json.loads(text))
    np.testing.assert_allclose(ensemble.predict(Xt), models[loss].predict(Xt), rtol=0, atol=1e-12)


def _dumped(fitted):
    return dump_ensemble(fitted[0]["squared_error"])


@pytest.mark.parametrize("change, message", [
    (lambda d: d["left"].__setitem__(0, 0), "left child"),  # a node pointing at itself: a loop
    (lambda d: d["right"].__setitem__(0, 10**6), "right child"),
    (lambda d: d["feature"].__setitem__(0, 99), "feature index"),
    (lambda d: d["value"].__setitem__(3, "__import__('os')"), "non-numeric"),
    (lambda d: d["threshold"].pop(), "differ in length"),
    (lambda d: d.pop("baseline"), "lacks 'baseline'"),
    (lambda d: d["tree_start"].__setitem__(1, 0), "offsets"),
])
def test_malformed_ensembles_are_refused(fitted, change, message):
    data = json.loads(json.dumps(_dumped(fitted)))
    change(data)
    with pytest.raises(EnsembleError, match=message):
        load_ensemble(data)


def test_wrong_row_width_is_refused(fitted):
    ensemble = load_ensemble(_dumped(fitted))
    with pytest.raises(EnsembleError, match="4 features"):
        ensemble.predict(np.zeros((2, 3)))
