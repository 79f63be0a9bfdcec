import numpy as np
import pytest

from calpipe import datamodels as dm
from calpipe import dqflags


def test_roundtrip_keeps_arrays_and_meta(tmp_path, raw_model):
    raw_model.meta.cal_step.dq_init = "COMPLETE"
    path = raw_model.save(tmp_path / "x_uncal.asdf")
    with dm.open(path) as model:
        assert isinstance(model, dm.RawModel)
        assert model.meta.filename == "x_uncal.asdf"
        assert model.meta.exposure.read_pattern == [[1], [2, 3], [4]]
        assert model.meta.cal_step.dq_init == "COMPLETE"
        np.testing.assert_array_equal(model.data, raw_model.data)
        assert model.data.dtype == np.uint16


def test_absent_branch_reads_empty_and_attaches_on_write(raw_model):
    assert not raw_model.meta.photometry
    assert "photometry" not in raw_model.meta
    raw_model.meta.photometry.pixelarea_steradians = 2.0
    assert raw_model.meta.photometry.pixelarea_steradians == 2.0


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: setattr(m, "data", m.data.astype(np.float32)), "invalid at data"),
        (lambda m: m.meta.exposure.to_dict().pop("frame_time"), "'frame_time' is a required property"),
        (lambda m: setattr(m, "data", m.data[:2]), "read_pattern lists 3 resultants but data holds 2"),
        (lambda m: setattr(m, "data", m.data[0]), "invalid at data"),
    ],
)
def test_invalid_model_is_refused_and_nothing_is_written(tmp_path, raw_model, change, message):
    change(raw_model)
    target = tmp_path / "bad_uncal.asdf"
    with pytest.raises(dm.DataModelError, match=message) as info:
        raw_model.save(target)
    assert str(target) in str(info.value)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_truncated_and_corrupt_files_give_one_line(tmp_path, raw_model):
    good = raw_model.save(tmp_path / "good_uncal.asdf")
    blob = open(good, "rb").read()
    cases = {
        "truncated_data.asdf": blob[:-300],
        "truncated_header.asdf": blob[:200],
        "garbage.asdf": b"not an asdf file\n" * 20,
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(dm.DataModelError) as info:
            dm.open(tmp_path / name)
        assert name in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(dm.DataModelError, match="no such file"):
        dm.open(tmp_path / "missing.asdf")


def test_file_without_model_type_is_refused(tmp_path):
    import asdf

    asdf.AsdfFile({"meta": {}, "data": np.zeros(3)}).write_to(tmp_path / "plain.asdf")
    with pytest.raises(dm.DataModelError, match="meta.model_type"):
        dm.open(tmp_path / "plain.asdf")


def test_image_shapes_must_agree():
    image = dm.ImageModel(
        meta={}, data=np.zeros((4, 4), np.float32), dq=np.zeros((4, 5), np.uint32),
        err=np.zeros((4, 4), np.float32), var_poisson=np.zeros((4, 4), np.float32),
        var_rnoise=np.zeros((4, 4), np.float32),
    )
    assert list(image.problems()) == ["dq has shape (4, 5), expected (4, 4) (as data)"]


def test_dq_flag_values_are_the_standard_ones():
    assert (dqflags.DO_NOT_USE, dqflags.SATURATED, dqflags.JUMP_DET, dqflags.DROPOUT) == (1, 2, 4, 8)
    assert dqflags.NO_LIN_CORR == 2**20 and dqflags.REFERENCE_PIXEL == 2**31
    assert dqflags.describe(dqflags.SATURATED | dqflags.NO_FLAT_FIELD) == ["SATURATED", "NO_FLAT_FIELD"]
    assert all(v < 256 for v in dqflags.group.values())


def test_crds_parameters_are_flat_scalars(raw_model):
    params = raw_model.get_crds_parameters()
    assert params["meta.instrument.detector"] == "WFI01"
    assert params["meta.exposure.nresultants"] == 3
    assert all(not isinstance(v, (dict, list)) for v in params.values())


def test_a_catalog_read_back_stays_a_table_through_load_arrays(tmp_path):
    from astropy.table import Table
    from support.tiny_data import exposure_meta

    plane = np.ones((8, 8), np.float32)
    catalog = Table({"label": np.array([1, 2], np.int32), "kron_flux": [10.5, 20.25]})
    image = dm.ImageModel(meta=dict(exposure_meta(), model_type="ImageModel"), data=plane, dq=np.zeros((8, 8), np.uint32),
                          err=plane, var_poisson=plane, var_rnoise=plane, source_catalog=catalog)
    path = image.save(tmp_path / "x_cal.asdf")
    loaded = dm.open(path).load_arrays()  # what a step does before changing a product in place
    assert isinstance(loaded.source_catalog, Table)
    again = dm.open(loaded.save(tmp_path / "y_cal.asdf"))
    assert list(again.source_catalog["kron_flux"]) == [10.5, 20.25]
    np.testing.assert_array_equal(again.data, plane)
