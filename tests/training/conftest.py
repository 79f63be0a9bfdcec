import os

import pytest
import sqlalchemy as sa

from calpipe.training import db as D

URLS = ["sqlite"] + (["postgresql"] if os.environ.get("CALPIPE_TEST_DATABASE_URL") else [])


@pytest.fixture(params=URLS)
def db_url(request, tmp_path):
    """A fresh, empty database: a SQLite file, and PostgreSQL when CALPIPE_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'train.db'}"
        return
    url = os.environ["CALPIPE_TEST_DATABASE_URL"]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        D.metadata.drop_all(conn)
    engine.dispose()
    yield url


@pytest.fixture
def db(db_url):
    with D.TrainingDB(db_url) as database:
        yield database
