import json
import pickle

import numpy as np
import pytest
import sqlalchemy as sa

from calpipe.model.store import ModelError, export_file, get, latest, list_models, read_file, resource_models
from calpipe.training.db import TrainingDB


def test_stored_model_loads_verified_and_versioned(trained_db):
    path, record = trained_db
    with TrainingDB(path, create=False) as database:
        model = latest(database, "image")
        assert model.id == "image/v1" and get(database, "image/v1").checksum == model.checksum
        assert latest(database, "spec") is None
        (entry,) = list_models(database)
    assert entry["n_rows"] == record["n_rows"] == 160
    assert model.record["metrics"] == record["metrics"]
    assert model.record["encoding_version"] >= 1 and model.record["features"][0] == "instr"


def test_loading_never_unpickles(trained_db, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle or numpy.load used while loading a model")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(np, "load", refuse)
    path, _ = trained_db
    with TrainingDB(path, create=False) as database:
        model = latest(database, "image")
        row = database.engine.connect().execute(sa.select(resource_models.c.record)).scalar()
    # The stored text is plain JSON: containers, strings and numbers only.
    def plain(node):
        if isinstance(node, dict):
            return all(isinstance(k, str) and plain(v) for k, v in node.items())
        if isinstance(node, list):
            return all(plain(v) for v in node)
        return isinstance(node, (str, int, float, bool, type(None)))
    assert plain(json.loads(row))
    assert model.predict(np.zeros((1, len(model.record["features"]))))["peak_memory_mb"][0][0] > 0


def _copy(src, dst):
    import shutil

    shutil.copy(src, dst)
    return dst


def test_model_altered_in_the_database_is_refused(trained_db, tmp_path):
    path = _copy(trained_db[0], tmp_path / "altered.db")
    with TrainingDB(path, create=False) as database:
        with database.transaction() as conn:
            text = conn.execute(sa.select(resource_models.c.record)).scalar()
            record = json.loads(text)
            record["targets"]["peak_memory_mb"]["upper_margin"] -= 1.0  # smaller reservations
            conn.execute(resource_models.update().values(record=json.dumps(record, sort_keys=True)))
        with pytest.raises(ModelError, match="checksum mismatch") as err:
            latest(database, "image")
        assert "\n" not in str(err.value)
        (entry,) = list_models(database)
        assert "checksum mismatch" in entry["error"]


def test_exported_file_round_trips_and_refuses_alteration(trained_db, tmp_path):
    with TrainingDB(trained_db[0], create=False) as database:
        model = latest(database, "image")
    path = export_file(model, tmp_path / "image.json")
    again = read_file(path)
    assert again.checksum == model.checksum and again.id == "image/v1"
    text = path.read_text()
    assert '\\"n_rows\\":160' in text  # the record is JSON text inside the file
    path.write_text(text.replace('\\"n_rows\\":160', '\\"n_rows\\":161'))
    with pytest.raises(ModelError, match="checksum mismatch"):
        read_file(path)
    (tmp_path / "junk.json").write_text("not json")
    with pytest.raises(ModelError, match="not a model file"):
        read_file(tmp_path / "junk.json")
