import numpy as np
import pytest
from support.tiny_data import exposure_meta, ref_meta

from calpipe import datamodels as dm
from calpipe.references import MissingReferenceError, RefStore, find_store


def _dark(path, useafter, detector="WFI01"):
    meta = ref_meta("dark", useafter)
    meta["instrument"]["detector"] = detector
    model = dm.DarkRefModel(meta=meta, data=np.zeros((8, 8), np.float32), dq=np.zeros((8, 8), np.uint32))
    return model.save(path)


@pytest.fixture
def store(tmp_path):
    outside = tmp_path / "incoming"
    outside.mkdir()
    files = [
        _dark(outside / "dark_2020.asdf", "2020-01-01T00:00:00"),
        _dark(outside / "dark_2027a.asdf", "2027-05-01T00:00:00"),
        _dark(outside / "dark_2028.asdf", "2028-01-01T00:00:00"),
        _dark(outside / "dark_other_det.asdf", "2027-05-31T00:00:00", detector="WFI02"),
    ]
    store = RefStore(tmp_path / "refs")
    store.add(files)
    return store


@pytest.mark.parametrize(
    "select, expected",
    [("before", "dark_2027a.asdf"), ("after", "dark_2028.asdf"), ("nearest", "dark_2027a.asdf")],
)
def test_selection_by_date(store, select, expected):
    meta = exposure_meta(start_time="2027-06-01T00:00:00")
    assert store.best("dark", meta, select).endswith("/" + expected)


def test_nearest_picks_the_closest_side(store):
    meta = exposure_meta(start_time="2027-12-20T00:00:00")
    assert store.best("dark", meta, "nearest").endswith("dark_2028.asdf")
    assert store.best("dark", meta, "before").endswith("dark_2027a.asdf")


def test_add_copies_into_the_store_and_indexes(store):
    names = sorted(p.name for p in store.path.iterdir())
    assert names == ["dark_2020.asdf", "dark_2027a.asdf", "dark_2028.asdf", "dark_other_det.asdf", "index.json"]
    assert {e["detector"] for e in store.entries()} == {"WFI01", "WFI02"}


def test_missing_reference_names_type_keys_and_store(store):
    meta = exposure_meta(start_time="2019-01-01T00:00:00")
    with pytest.raises(MissingReferenceError) as info:
        store.best("dark", meta, "before")
    message = str(info.value)
    assert "dark" in message and "detector=WFI01" in message and str(store.path) in message
    with pytest.raises(MissingReferenceError, match="no flat reference"):
        store.best("flat", exposure_meta(), "before")


def test_optical_element_must_match_when_the_reference_names_one(tmp_path):
    def flat(name, element):
        m = dm.FlatRefModel(
            meta=ref_meta("flat", optical_element=element), data=np.ones((8, 8), np.float32),
            err=np.zeros((8, 8), np.float32), dq=np.zeros((8, 8), np.uint32),
        )
        return m.save(tmp_path / name)

    store = RefStore(tmp_path / "refs")
    store.add([flat("flat_f062.asdf", "F062"), flat("flat_f158.asdf", "F158")])
    assert store.best("flat", exposure_meta(), "before").endswith("flat_f158.asdf")


def test_store_comes_from_the_environment(store, monkeypatch):
    monkeypatch.setenv("CALPIPE_REFS", str(store.path))
    assert find_store().path == store.path
    monkeypatch.delenv("CALPIPE_REFS")
    with pytest.raises(MissingReferenceError, match="CALPIPE_REFS"):
        find_store()


def test_import_indexes_a_folder_tree_in_place_and_reports_bad_files(tmp_path, capsys):
    from calpipe import cli

    cache = tmp_path / "cache"
    (cache / "wfi" / "dark").mkdir(parents=True)
    _dark(cache / "wfi" / "dark" / "dark_2020.asdf", "2020-01-01T00:00:00")
    _dark(cache / "dark_2027.asdf", "2027-05-01T00:00:00")
    (cache / "wfi" / "broken.asdf").write_bytes(b"#ASDF 1.0.0\nnot yaml: [")
    meta = exposure_meta()
    dm.RawModel(meta=meta, data=np.zeros((3, 8, 8), np.uint16)).save(cache / "x_uncal.asdf")

    status = cli.main(["refs", "--store", str(tmp_path / "S"), "import", str(cache)])
    out, err = capsys.readouterr()
    assert status == 1  # one unreadable file: reported, the others indexed
    assert [line for line in err.splitlines() if "error:" in line] == [
        line for line in err.splitlines() if "broken.asdf" in line]
    assert "x_uncal.asdf" in err and "not a reference file" in err
    entries = RefStore(tmp_path / "S").entries()
    assert sorted(e["path"] for e in entries) == sorted(
        str(p.resolve()) for p in [cache / "dark_2027.asdf", cache / "wfi" / "dark" / "dark_2020.asdf"])
    assert not (tmp_path / "S" / "dark_2027.asdf").exists()  # indexed where it lies
    assert RefStore(tmp_path / "S").best("dark", meta) == str((cache / "dark_2027.asdf").resolve())


def test_roman_reference_files_are_indexed_by_their_own_metadata(tmp_path):
    rdm = pytest.importorskip("roman_datamodels.datamodels", reason="needs calpipe[roman] (roman_datamodels)")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat = rdm.FlatRefModel.create_fake_data(shape=(8, 8))
        flat.meta.instrument.detector, flat.meta.instrument.optical_element = "WFI07", "F158"
        flat.save(tmp_path / "roman_flat.asdf")
        dark = rdm.DarkRefModel.create_fake_data(shape=(2, 8, 8))
        dark.meta.instrument.detector, dark.meta.instrument.optical_element = "WFI07", "F062"
        dark.save(tmp_path / "roman_dark.asdf")
    store = RefStore(tmp_path / "S")
    flat_entry, dark_entry = store.add([tmp_path / "roman_flat.asdf", tmp_path / "roman_dark.asdf"])
    assert flat_entry == {"path": "roman_flat.asdf", "reftype": "flat", "model_type": "FlatRefModel",
                          "instrument": "WFI", "detector": "WFI07", "optical_element": "F158",
                          "useafter": "2020-01-01T00:00:00.000", "description": flat.meta.description}
    # a Roman dark names a filter but serves every one
    assert dark_entry["reftype"] == "dark" and dark_entry["optical_element"] == ""
    meta = exposure_meta()
    meta["instrument"].update(detector="WFI07", optical_element="F158")
    assert store.best("dark", meta) == str(store.path / "roman_dark.asdf")
    with dm.open(store.best("flat", meta)) as model:
        # a Roman flat covers the science array, and stays so (flat_field takes either)
        assert isinstance(model, dm.FlatRefModel) and model.data.shape == (8, 8)
        np.testing.assert_array_equal(model.data, flat.data)


def _flip_array_byte(path):
    blob = bytearray(path.read_bytes())
    blob[blob.index(b"\xd3BLK") + 60] ^= 0x5A
    path.write_bytes(bytes(blob))


def test_files_are_verified_once_and_again_after_any_rewrite(store, tiny):
    from calpipe.errors import CalpipeError
    from calpipe.steps import DarkCurrentStep, DQInitStep, RampFitStep

    path = store.path / "dark_2027a.asdf"
    assert store.unchanged(path) and not store.unchanged(store.path / "absent.asdf")
    _flip_array_byte(path)
    assert not store.unchanged(path)  # the write moved its modification time
    # Through a step: the rewritten file of the tiny store is refused when opened.
    uncal, tiny_store = tiny
    dark = tiny_store / "tiny_dark.asdf"
    image = RampFitStep.call(DQInitStep.call(uncal))
    _flip_array_byte(dark)
    with pytest.raises(CalpipeError, match="damaged array data"):
        DarkCurrentStep.call(image)
