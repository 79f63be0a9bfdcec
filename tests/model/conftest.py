"""Fixtures: a synthetic training database (see model_data) and a model trained on it."""

import pytest
from support.model_data import N_PRODUCTS, fill, synthetic_products

from calpipe.training import db as D


@pytest.fixture(scope="session")
def synthetic_db(tmp_path_factory):
    """Path of a SQLite training database with :data:`N_PRODUCTS` synthetic products."""
    path = tmp_path_factory.mktemp("model") / "training.db"
    with D.TrainingDB(path) as database:
        fill(database, synthetic_products(N_PRODUCTS))
    return path


@pytest.fixture(scope="session")
def trained_db(synthetic_db, tmp_path_factory):
    """A copy of :func:`synthetic_db` with one trained image model; returns (path, record)."""
    import shutil

    from calpipe.model.store import save
    from calpipe.model.train import train_family

    path = tmp_path_factory.mktemp("trained") / "training.db"
    shutil.copy(synthetic_db, path)
    with D.TrainingDB(path) as database:
        record = train_family(database, "image")
        save(database, record)
    return path, record
