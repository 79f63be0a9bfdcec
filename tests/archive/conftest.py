"""Archive fixtures: a database per dialect, and one simulated exposure calibrated twice."""

import os
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

URLS = ["sqlite"] + (["postgresql"] if os.environ.get("CALPIPE_TEST_DATABASE_URL") else [])


@pytest.fixture(params=URLS)
def db_url(request):
    """None (the SQLite file in the archive folder), and an emptied PostgreSQL database when
    CALPIPE_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        yield None
        return
    url = os.environ["CALPIPE_TEST_DATABASE_URL"]
    _drop_archive_tables(url)
    yield url
    _drop_archive_tables(url)  # the database is shared with other tests


def _drop_archive_tables(url):
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        names = sa.inspect(conn).get_table_names()
        ours = [n for n in names if n.startswith("meta_")] + [
            "provenance", "datasets", "archive_migrations", "roots", "archive_meta"]
        for name in ours:
            if name in names:
                conn.execute(sa.text(f'DROP TABLE "{name}" CASCADE'))
    engine.dispose()


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory):
    """A 256x256 simulated exposure calibrated twice with different source-catalog thresholds:
    ``uncal``, ``refs``, ``truth``, ``run1`` and ``run2`` (folders of products), ``root``."""
    from calpipe.pipelines import ExposurePipeline
    from calpipe.simulate import simulate

    base = tmp_path_factory.mktemp("two_runs")
    sim = simulate(base / "sim", size=256, nresultants=6, seed=3)
    runs = {}
    for name, threshold in (("run1", 3.0), ("run2", 5.0)):
        out = base / name
        ExposurePipeline.call(str(sim.uncal), output_dir=str(out), save_results=True, ref_store=str(sim.refs),
                              steps={"ramp_fit": {"save_results": True},
                                     "source_catalog": {"snr_threshold": threshold}})
        runs[name] = out
    return SimpleNamespace(uncal=sim.uncal, refs=sim.refs, truth=sim.truth, root=sim.root, **runs)
