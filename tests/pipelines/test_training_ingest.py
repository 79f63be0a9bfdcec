import subprocess
import sys
from pathlib import Path

import asdf
import numpy as np
import pandas as pd

from calpipe.associations.pool import load_pool, write_associations
from calpipe.pipelines.training_ingest import TrainingIngestPipeline
from calpipe.training import db as D
from calpipe.training.export import export


def write_exposure(folder, exposure, detector):
    root = f"cp00003002001_{exposure:04d}_{detector.lower()}"
    meta = {
        "instrument": {"name": "WFI", "detector": detector, "optical_element": "F087"},
        "exposure": {"type": "WFI_IMAGE", "start_time": f"2027-01-0{exposure}T00:00:00", "nresultants": 6,
                     "read_pattern": [[1], [2]], "frame_time": 3.04},
        "observation": {"program": 3, "observation": 2, "visit": 1, "exposure": exposure},
        "wcsinfo": {"ra_ref": 30.0 + exposure * 1e-4, "dec_ref": 0.0},
        "target": {"name": "F1", "ra": 30.0, "dec": 0.0},
    }
    asdf.AsdfFile({"meta": meta, "data": np.zeros((2, 4, 4), np.uint16)}).write_to(folder / f"{root}_uncal.asdf")
    return root


def write_cal(folder, root, peak, wall):
    resources = {"ramp_fit": {"wall_seconds": wall / 2, "peak_rss_mb": peak - 10, "start_rss_mb": 100.0},
                 "exposure_pipeline": {"wall_seconds": wall, "peak_rss_mb": peak, "start_rss_mb": 100.0}}
    asdf.AsdfFile({"meta": {"resources": resources}}).write_to(folder / f"{root}_cal.asdf")


def test_training_ingest_pipeline_targets_are_measured_costs(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    roots = [write_exposure(raw, e, d) for e in (1, 2) for d in ("WFI01", "WFI02")]
    (asn_path,) = write_associations(load_pool(raw), raw)
    url = f"sqlite:///{tmp_path / 't.db'}"

    # Nothing calibrated yet: the product waits.
    TrainingIngestPipeline.call(str(asn_path), steps={"ingest": {"database": url}})
    with D.TrainingDB(url) as db:
        assert db.counts()["pending_product"] == 1 and db.counts()["training"] == 0

    # Each member calibrated on its own: peak is the largest, wall the sum.
    for i, root in enumerate(roots):
        write_cal(raw, root, peak=500.0 + 10 * i, wall=2.0 + i)
    TrainingIngestPipeline.call(str(asn_path), steps={"ingest": {"database": url}})
    with D.TrainingDB(url) as db:
        assert db.counts()["pending"] == 0
        export(db, tmp_path / "out")
    train = pd.read_csv(tmp_path / "out" / "training.csv")
    assert train["dname"].tolist() == ["cp00003-o002_t001_wfi_f087"]
    assert train["peak_memory_mb"].tolist() == [530.0]
    assert train["wall_seconds"].tolist() == [2.0 + 3.0 + 4.0 + 5.0]
    assert train["n_exposures"].tolist() == [4] and train["n_detectors"].tolist() == [2]

    # One association run wrote the same record on every member: counted once.
    for root in roots:
        write_cal(raw, root, peak=800.0, wall=9.5)
    TrainingIngestPipeline.call(str(asn_path), steps={"ingest": {"database": url}})
    with D.TrainingDB(url) as db, db.engine.connect() as conn:
        row = conn.execute(D.sa.select(D.training.c.peak_memory_mb, D.training.c.wall_seconds,
                                       D.training.c.n_reprocessed)).one()
    assert tuple(row) == (800.0, 9.5, 1)


def _run(*argv, cwd):
    bin_dir = Path(sys.executable).parent
    return subprocess.run([str(bin_dir / argv[0]), *argv[1:]], cwd=cwd, capture_output=True, text=True)


def test_readme_workflow_from_the_command_line(tmp_path, monkeypatch):
    """asn from-pool sim/ --out asn/, then strun training_ingest asn/<product>_asn.json, as a user types them."""
    sim = tmp_path / "sim"
    sim.mkdir()
    roots = [write_exposure(sim, e, d) for e in (1, 2) for d in ("WFI01", "WFI02")]
    res = _run("calpipe", "asn", "from-pool", "sim/", "--out", "asn/", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (asn,) = [Path(line) for line in res.stdout.split()]
    assert asn.parent == Path("asn")

    # Calibrated products in out/ (their resources as the exposure pipeline records them),
    # and one day's operations report given without a trailing comma.
    (tmp_path / "out").mkdir()
    for i, root in enumerate(roots):
        write_cal(tmp_path / "out", root, peak=500.0 + 10 * i, wall=2.0)
    with open(tmp_path / "day.csv", "w") as f:
        f.write("Dataset,DagNodeName,ImageSize,PROGRAM,OBSERVTN,TARGNAME,INSTRUME,DETECTOR,EXP_TYPE,FILTER,PUPIL\n"
                "jw01234001001_02101_00001_nrca1,CAL_LEVEL_1B,2048,1234,1,NGC-1,NIRCAM,NRCA1,NRC_IMAGE,F200W,CLEAR\n"
                "jw01234-o001_t003_nircam_clear-f200w,CAL_LEVEL_3,777,,,,,,,,\n")
    res = _run("strun", "training_ingest", str(asn), "--steps.ingest.cal_dir=out",
               "--steps.ingest.database=train.db", "--steps.ingest.reports=day.csv", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    res = _run("calpipe", "db", "export", "--out", "exports", "--db", "train.db", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    train = pd.read_csv(tmp_path / "exports" / "training.csv")
    assert train["dname"].tolist() == ["cp00003-o002_t001_wfi_f087", "jw01234-o001_t003_nircam_clear-f200w"]
    assert train["peak_memory_mb"].tolist()[0] == 530.0 and train["wall_seconds"].tolist()[0] == 8.0
    assert train["imagesize"].tolist()[1] == 777.0

    # The same reports from a parameter file: one file as a string, several as a list.
    for reports in ("day.csv", ["day.csv", "day.csv"]):
        pars = {"class": "calpipe.pipelines.training_ingest.TrainingIngestPipeline", "name": "TrainingIngestPipeline",
                "parameters": {}, "steps": [{"class": "calpipe.steps.ingest.IngestStep", "name": "ingest",
                                             "parameters": {"reports": reports, "database": "pars.db"}}]}
        asdf.AsdfFile(pars).write_to(tmp_path / "pars.asdf")
        monkeypatch.chdir(tmp_path)
        TrainingIngestPipeline.call(str(asn), config_file="pars.asdf")
        with D.TrainingDB(tmp_path / "pars.db") as db, db.engine.connect() as conn:
            assert conn.execute(D.sa.select(D.training.c.product)).scalars().all() == [
                "jw01234-o001_t003_nircam_clear-f200w"]

    # A report alone, no association; then a bad one: one line, exit 2 from strun.
    res = _run("calpipe", "db", "ingest-reports", "day.csv", "--db", "reports.db", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    res = _run("strun", "training_ingest", str(asn), "--steps.ingest.database=train.db",
               "--steps.ingest.reports=missing.csv", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == (
        "training_ingest: error: missing.csv: cannot read report (No such file or directory)")
