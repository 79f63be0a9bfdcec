import csv

import pytest
from support.model_data import peak_law, product_exposures, wall_law

from calpipe.model import reservation_mb
from calpipe.model.predict import predict_products, products_of_pool
from calpipe.model.store import latest
from calpipe.training.db import TrainingDB


@pytest.fixture(scope="module")
def model(trained_db):
    with TrainingDB(trained_db[0], create=False) as database:
        return latest(database, "image")


def test_prediction_follows_the_law_inside_the_training_range(model):
    exposures = product_exposures(5000, 3, 20000.0, 12)
    (pred,) = predict_products([("p", "image", exposures)], {"image": model})
    assert pred.model == "image/v1" and pred.outside == []
    assert pred.peak_memory_mb == pytest.approx(peak_law(20000.0, 3), rel=0.10)
    assert pred.wall_seconds == pytest.approx(wall_law(20000.0, 3, 12), rel=0.25)
    assert pred.peak_memory_mb < pred.peak_memory_mb_upper < 1.3 * pred.peak_memory_mb
    assert pred.wall_seconds < pred.wall_seconds_upper


def test_features_outside_the_training_range_are_named(model):
    exposures = product_exposures(5001, 3, 5e6, 12, filt="F999W")  # far larger; a new filter
    (pred,) = predict_products([("p", "image", exposures)], {"image": model})
    notes = " ".join(pred.outside)
    assert "input_size_kb=1.5e+07" in notes and "filter=F999W (value not seen in training)" in notes
    (none,) = predict_products([("q", "spec", exposures)], {"spec": None})
    assert none.model is None and none.peak_memory_mb is None


def test_reservation_mb(trained_db, model, tmp_path):
    path = trained_db[0]
    exposures = product_exposures(5002, 2, 50000.0, 6)
    mb, ident = reservation_mb(exposures, database=path)
    (pred,) = predict_products([("p", "image", exposures)], {"image": model})
    assert ident == "image/v1" and mb == pytest.approx(pred.peak_memory_mb_upper)
    assert mb > peak_law(50000.0, 2)
    assert reservation_mb(exposures, database=path, family="spec") is None
    assert reservation_mb(product_exposures(5003, 2, 5e6, 6), database=path) is None  # out of range
    missing = tmp_path / "none.db"
    assert reservation_mb(exposures, database=missing) is None and not missing.exists()


def test_products_of_a_pool_table(tmp_path):
    rows = product_exposures(6000, 2, 1000.0, 6) + product_exposures(6001, 1, 1000.0, 6)
    path = tmp_path / "pool.csv"
    keys = ["expname", "program", "observtn", "instrume", "detector", "exp_type", "filter", "pupil",
            "subarray", "nresultants", "targ_ra", "targ_dec", "targname"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["FILENAME" if k == "expname" else k.upper() for k in keys])
        for r in rows:
            w.writerow([r[k] for k in keys])
    products = products_of_pool(path)
    assert [(name, family, len(exps)) for name, family, exps in products] == [
        ("jw06000-o001_t001_nircam_clear-f200w", "image", 2), ("jw06001-o001_t001_nircam_clear-f200w", "image", 1)]
