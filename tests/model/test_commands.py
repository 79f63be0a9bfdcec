import json
import shutil
from pathlib import Path

import sqlalchemy as sa
from support.model_data import fill, synthetic_products
from support.tiny_data import write_tiny_exposure

from calpipe.associations.asn import make_asn, write_asn
from calpipe.cli import main
from calpipe.model.store import resource_models
from calpipe.training.db import TrainingDB


def tiny_association(folder):
    """An association of one tiny calpipe (WFI) exposure."""
    exposure = Path(write_tiny_exposure(folder / "cp00001001001_0001_wfi01_uncal.asdf"))
    return write_asn(make_asn({"cp00001-o001_t001_wfi_f158": [exposure.name]}, asn_id="a1", program=1,
                              target="t001"), folder / "a1_asn.json")


def test_train_prints_metrics_beside_the_baseline_and_stores_a_version(tmp_path, capsys):
    path = tmp_path / "small.db"
    with TrainingDB(path) as database:
        fill(database, synthetic_products(40, seed=5))
    assert main(["model", "train", "--db", str(path), "--folds", "3"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("image/v1: 40 products, 3-fold cross-validation")
    assert out.count("baseline") == 2 and "MdAPE" in out and "under-predicted" in out
    assert "skipped family spec: 0 product(s)" in err
    assert main(["model", "status", "--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert "image/v1" in out and "40 products" in out


def test_predict_table_and_json(trained_db, tmp_path, capsys):
    asn = tiny_association(tmp_path)
    db = str(trained_db[0])
    assert main(["model", "predict", str(asn), "--db", db]) == 0
    out = capsys.readouterr().out
    assert "cp00001-o001_t001_wfi_f158" in out and "image/v1" in out
    # Trained on NIRCam products: a WFI exposure is outside the training range, and says so.
    assert "outside the training range: instr=WFI (value not seen in training)" in out
    assert main(["model", "predict", str(asn), "--db", db, "--format", "json"]) == 0
    (pred,) = json.loads(capsys.readouterr().out)["predictions"]
    assert pred["model"] == "image/v1" and pred["peak_memory_mb_upper"] > pred["peak_memory_mb"] > 0


def test_altered_model_is_refused_in_one_line(trained_db, tmp_path, capsys):
    path = shutil.copy(trained_db[0], tmp_path / "t.db")
    assert main(["model", "export", "image", "--db", str(path), "--out", str(tmp_path / "m.json")]) == 0
    with TrainingDB(path, create=False) as database, database.transaction() as conn:
        conn.execute(resource_models.update().values(record=sa.func.replace(resource_models.c.record, '"n_rows":160', '"n_rows":16')))
    capsys.readouterr()
    asn = tiny_association(tmp_path)
    assert main(["model", "predict", str(asn), "--db", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("calpipe model predict: error: model image/v1 in ") and "checksum mismatch" in err
    assert err.count("\n") == 1
    assert main(["model", "predict", str(asn), "--model", str(tmp_path / "m.json")]) == 0  # the export is intact
    assert main(["model", "status", "--db", str(path)]) == 1
    assert "REFUSED" in capsys.readouterr().out


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["model", "predict"]) == 2
    assert main(["model", "status", "--db", str(tmp_path / "missing.db")]) == 2
    assert main(["model", "predict", "--pool", str(tmp_path), "--model", str(tmp_path / "none.json")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("calpipe model ") and ": error: " in line for line in lines)
    assert not (tmp_path / "missing.db").exists()
