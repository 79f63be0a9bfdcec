"""Learning from JWST-style operations reports (see jwst_report)."""

import pytest
from support.jwst_report import SUBARRAYS, report_rows, write_report

from calpipe.model.features import FEATURES, training_rows
from calpipe.model.train import train_family
from calpipe.training import db as D
from calpipe.training import ingest as I

N = 150


@pytest.fixture(scope="module")
def report_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jwst")
    rows, truth = report_rows(N)
    report = I.parse_report(write_report(tmp / "day.csv", rows))
    database = D.TrainingDB(tmp / "training.db")
    I.ingest(database, report.exposures, report.costs, source="day.csv")
    yield database, report, rows, truth
    database.close()


def test_report_with_missing_keys_is_read_and_its_rows_not_used_counted(report_db):
    database, report, rows, truth = report_db
    assert "2 of" in report.note() and "1 with stage LEVEL_2B" in report.note()
    assert "1 level-1 with INSTRUME missing" in report.note()
    assert len(report.costs) == N
    assert sum(c.peak_memory_mb is None for c in report.costs) == sum(v is None for v in truth.values()) > 0
    assert all(c.wall_seconds > 0 for c in report.costs)


def test_report_features_know_pixels_and_groups_before_the_run(report_db):
    database, _, rows, truth = report_db
    names, X, targets = training_rows(database, "image")
    assert len(names) == N  # every product trained; a few without a memory figure
    by_name = dict(zip(names, X))
    product = sorted(truth)[0]
    l1 = [r for r in rows if r["DagNodeName"] == "LEVEL_1" and r.get("PROGRAM") == product[2:7]
          and r["Dataset"][7:10] == product.split("-o")[1][:3]]
    side = SUBARRAYS[l1[0]["SUBARRAY"]]
    row = by_name[product]
    assert row[FEATURES.index("n_pixels")] == side * side * len(l1)
    assert row[FEATURES.index("exposure_pixels")] == side * side
    assert row[FEATURES.index("nresultants")] == int(l1[0]["NGROUPS"])


def test_model_learnt_from_reports_beats_the_baseline(report_db):
    database, _, _, truth = report_db
    record = train_family(database, "image")
    assert record["n_rows"] == sum(v is not None for v in truth.values())
    mem = record["metrics"]["peak_memory_mb"]
    assert mem["model"]["mdape"] <= 0.5 * mem["baseline"]["mdape"]
    assert mem["model"]["over_allocation"] <= 0.30
    assert mem["model"]["under_rate"] <= 0.035  # 2% target, binomial scatter on ~145 runs
    wall = record["metrics"]["wall_seconds"]
    assert wall["model"]["mdape"] < wall["baseline"]["mdape"]
