"""The Roman adapter: Level-1 exposures and reference files in, Level-2 images out."""

import os
import subprocess
import sys
from pathlib import Path

import asdf
import numpy as np
import pytest

from calpipe import datamodels as dm
from calpipe import dqflags
from calpipe.datamodels import roman
from calpipe.steps import PhotomStep

rdm = pytest.importorskip("roman_datamodels.datamodels", reason="needs calpipe[roman] (roman_datamodels)")
# roman_datamodels warns about schema versions of the files its own makers write
pytestmark = pytest.mark.filterwarnings("ignore")

PATTERN = [[1], [2, 3], [4, 5, 6, 7], [8], [9, 10], [11]]
STRUN = str(Path(sys.executable).with_name("strun"))


def make_raw(path, size=64, **arrays):
    """A Roman Level-1 file written by roman_datamodels' own maker, with counts we know."""
    rng = np.random.default_rng(5)
    raw = rdm.ScienceRawModel.create_fake_data(shape=(len(PATTERN), size, size))
    raw.meta.exposure.read_pattern = PATTERN
    raw.meta.exposure.nresultants = len(PATTERN)
    raw.meta.exposure.frame_time = 3.04
    raw.data = rng.integers(100, 3000, (len(PATTERN), size, size)).astype(np.uint16)
    raw.amp33 = np.zeros((len(PATTERN), size, 128), np.uint16)
    for name, value in arrays.items():
        if name.startswith("meta."):
            node = raw.meta
            *branches, leaf = name.split(".")[1:]
            for branch in branches:
                node = node[branch]
            node[leaf] = value
        else:
            raw[name] = value
    raw.save(path)
    return raw


def test_level1_is_read_as_the_roman_dq_init_reads_it(tmp_path):
    path = tmp_path / "r0000101001001001001_0001_wfi01_uncal.asdf"
    reference = np.full((64, 64), 700, np.uint16)
    resultantdq = np.zeros((6, 64, 64), np.uint8)
    resultantdq[2, 5, 6] = dqflags.DROPOUT
    written = make_raw(path, reference_read=reference, resultantdq=resultantdq,
                       **{"meta.instrument.data_encoding_offset": 200,
                          "meta.guide_star.window_xstart": 10, "meta.guide_star.window_xstop": 20,
                          "meta.guide_star.window_ystart": 30, "meta.guide_star.window_ystop": 34})
    raw = dm.open(path)
    assert isinstance(raw, dm.RawModel) and raw.data.dtype == np.uint16
    expected = written.data.astype(np.int64) + 700 - 200
    np.testing.assert_array_equal(raw.data, expected)
    assert raw.groupdq[2, 5, 6] == dqflags.DROPOUT and raw.groupdq.sum() == dqflags.DROPOUT
    gw = raw.pixeldq & dqflags.GW_AFFECTED_DATA
    assert gw[:, 10:20].all() and not gw[:, :10].any() and not gw[:, 20:].any()
    unusable = (raw.pixeldq & dqflags.DO_NOT_USE) != 0
    assert unusable[30:34, 10:20].all() and unusable.sum() == 40
    assert raw.meta.exposure.read_pattern == PATTERN and raw.meta.exposure.frame_time == 3.04
    assert raw.meta.roman["instrument"]["data_encoding_offset"] == 200
    # lz4-compressed blocks, as roman_datamodels writes them
    with asdf.open(path) as af:
        assert af.get_array_compression(af.tree["roman"]["data"]) == "lz4"


def test_sentinel_guide_window_and_counts_outside_the_adc_range(tmp_path):
    path = tmp_path / "r_uncal.asdf"
    data = np.full((6, 64, 64), 1000, np.uint16)
    data[1, 3, 4] = 10  # below the encoding offset: negative once it is removed
    make_raw(path, data=data, **{"meta.instrument.data_encoding_offset": 50})
    raw = dm.open(path)
    assert raw.pixeldq.sum() == 0  # -999999: no guide window
    assert raw.data[1, 3, 4] == 0
    assert raw.groupdq[1, 3, 4] == dqflags.AD_FLOOR | dqflags.DO_NOT_USE and raw.groupdq.sum() == raw.groupdq[1, 3, 4]


def _edit_header(path, old, new):
    """Change the YAML header of a file in place (same length: the array blocks stay put),
    as a damaged file or another writer could leave it; asdf would refuse to write it."""
    blob = path.read_bytes()
    header_end = blob.index(b"\xd3BLK")
    assert len(old) == len(new) and old in blob[:header_end]
    path.write_bytes(blob[:header_end].replace(old, new, 1) + blob[header_end:])


@pytest.mark.parametrize("problem, expected", [
    ("missing amp33", "amp33"),
    ("wrong dtype", "data"),
    ("read pattern", "read_pattern: lists 5 resultants but data holds 6"),
    ("frame time", "frame_time"),
    ("truncated", "damaged or truncated array data"),
    ("damaged", "damaged or truncated array data"),
])
def test_bad_level1_files_get_one_line(tmp_path, problem, expected):
    path = tmp_path / "bad_uncal.asdf"
    if problem in ("truncated", "damaged"):
        make_raw(path)
        blob = bytearray(path.read_bytes())
        data = blob.index(b"\xd3BLK") + 60  # inside the first array's compressed bytes
        if problem == "truncated":
            blob = blob[:data]
        else:
            blob[data:data + 40] = bytes(40)
        path.write_bytes(bytes(blob))
    elif problem == "read pattern":
        make_raw(path, **{"meta.exposure.read_pattern": PATTERN[:5], "meta.exposure.nresultants": -999999})
    elif problem == "frame time":
        make_raw(path, **{"meta.exposure.frame_time": -999999.0})
    else:
        make_raw(path)
        if problem == "missing amp33":
            _edit_header(path, b"  amp33: !core", b"  amp34: !core")
        else:
            _edit_header(path, b"source: 0\n    datatype: uint16", b"source: 0\n    datatype:  int16")
    with pytest.raises(dm.DataModelError) as err:
        dm.open(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) and expected in message


def test_bad_level1_from_strun_exits_2_without_output(tmp_path):
    make_raw(tmp_path / "r_uncal.asdf", **{"meta.exposure.read_pattern": PATTERN[:4],
                                            "meta.exposure.nresultants": -999999})
    done = subprocess.run([STRUN, "dq_init", "r_uncal.asdf", "--output-dir", "out"], cwd=tmp_path,
                          env={**os.environ, "CALPIPE_REFS": str(tmp_path)}, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "read_pattern" in errors[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_without_roman_datamodels_a_roman_file_names_the_extra(tmp_path, monkeypatch):
    make_raw(tmp_path / "r_uncal.asdf")
    monkeypatch.setitem(sys.modules, "roman_datamodels", None)
    monkeypatch.setitem(sys.modules, "roman_datamodels.datamodels", None)
    with pytest.raises(dm.DataModelError, match=r'Roman file .*pip install "calpipe\[roman\]"'):
        dm.open(tmp_path / "r_uncal.asdf")


def write_roman_ref(path, name, detector="WFI01", **arrays):
    ref = getattr(rdm, name).create_fake_data(shape=arrays.pop("shape", None))
    ref.meta.instrument.detector = detector
    for key, value in arrays.items():
        ref[key] = value
    ref.save(path)
    return path


def test_reference_files_become_calpipe_references(tmp_path):
    shape = (64, 64)
    ramp = np.ones((2, *shape), np.float32)
    cases = {
        "MaskRefModel": dict(dq=np.full(shape, 4, np.uint32)),
        "SaturationRefModel": dict(data=np.full(shape, 6e4, np.float32), dq=np.zeros(shape, np.uint32)),
        "LinearityRefModel": dict(coeffs=np.stack([np.zeros(shape), np.ones(shape)]).astype(np.float32),
                                  dq=np.zeros(shape, np.uint32)),
        "DarkRefModel": dict(dark_slope=np.full(shape, 0.01, np.float32), dq=np.zeros(shape, np.uint32),
                             dark_slope_error=np.zeros(shape, np.float32), shape=ramp.shape),
        "GainRefModel": dict(data=np.full(shape, 2.0, np.float32)),
        "ReadnoiseRefModel": dict(data=np.full(shape, 5.0, np.float32)),
        "FlatRefModel": dict(data=np.ones(shape, np.float32), dq=np.zeros(shape, np.uint32),
                             err=np.zeros(shape, np.float32)),
    }
    for name, arrays in cases.items():
        model = dm.open(write_roman_ref(tmp_path / f"{name}.asdf", name, **arrays))
        reftype = roman.REFERENCE_CLASSES[name]
        assert isinstance(model, dm.REFERENCE_MODELS[reftype]) and model.meta.reftype == reftype
        assert model.meta.instrument.detector == "WFI01"
    assert dm.open(tmp_path / "LinearityRefModel.asdf").meta.input_counts == "raw"
    np.testing.assert_array_equal(dm.open(tmp_path / "DarkRefModel.asdf").data, 0.01 * np.ones(shape, np.float32))


def test_linearity_for_raw_counts_is_the_same_correction_around_the_bias():
    rng = np.random.default_rng(2)
    coeffs = np.zeros((4, 3, 5))
    coeffs[1] = 1.0
    coeffs[2] = rng.uniform(1e-6, 3e-6, (3, 5))
    coeffs[3] = rng.uniform(1e-11, 3e-11, (3, 5))
    coeffs[:, 0, 0] = 0.0  # all zero: no correction, stays zero
    bias = rng.uniform(4000, 12000, (3, 5))
    raw = roman.linearity_for_raw_counts(coeffs, bias)
    assert not raw[:, 0, 0].any()
    m = np.linspace(0, 50000, 7)
    for y, x in [(1, 2), (2, 4)]:
        want = np.polyval(coeffs[::-1, y, x], m)
        got = np.polyval(raw[::-1, y, x].astype(np.float64), m + bias[y, x]) - bias[y, x]
        np.testing.assert_allclose(got, want, atol=0.05)  # DN, float32 coefficients


def test_image_model_keeps_calpipe_format_when_asked(tmp_path):
    meta = {"instrument": {"name": "WFI", "detector": "WFI01", "optical_element": "F158"},
            "exposure": {"type": "WFI_IMAGE", "start_time": "2027-01-01T00:00:00", "nresultants": 6,
                         "read_pattern": PATTERN, "frame_time": 3.04},
            "roman": {"telescope": "ROMAN"}}
    zeros = np.zeros((8, 8), np.float32)
    image = dm.ImageModel(meta=meta, data=zeros, dq=np.zeros((8, 8), np.uint32), err=zeros,
                          var_poisson=zeros, var_rnoise=zeros)
    PhotomStep(output_format="calpipe").finalize_result(image, [])  # what --output-format sets
    assert image._output_format == "calpipe"
    image.save(tmp_path / "x_cal.asdf")
    assert isinstance(dm.open(tmp_path / "x_cal.asdf"), dm.ImageModel)
    image._output_format = "auto"
    image.save(tmp_path / "y_cal.asdf")
    with rdm.open(tmp_path / "y_cal.asdf") as written:
        written.validate()
        assert type(written).__name__ == "ImageModel" and written.data.shape == (8, 8)
    # a calpipe exposure's image as a Roman one: its metadata mapped
    del meta["roman"]
    image._output_format = "roman"
    image.save(tmp_path / "z_cal.asdf")
    with rdm.open(tmp_path / "z_cal.asdf") as written:
        written.validate()
        assert written.meta.exposure.start_time.isot.startswith("2027-01-01")
        assert [list(r) for r in written.meta.exposure.read_pattern] == PATTERN


def test_dark_decay_and_integral_nonlinearity_references_are_read(tmp_path):
    """Both made with roman_datamodels' maker: the decay table serves any detector; the
    non-linearity table comes in science-channel order, a channel without a correction as zeros."""
    decay = rdm.DarkdecaysignalRefModel.create_fake_data()
    decay.meta.instrument.detector = "WFI05"
    decay.decay_table = {"WFI05": {"amplitude": 31.5, "time_constant": 17.0},
                         "WFI06": {"amplitude": None, "time_constant": None}}
    decay.save(tmp_path / "decay.asdf")
    ref = dm.open(tmp_path / "decay.asdf")
    assert isinstance(ref, dm.DarkDecaySignalRefModel) and ref.meta.instrument.detector == "ANY"
    assert ref.tree["decay_table"] == {"WFI05": {"amplitude": 31.5, "time_constant": 17.0},
                                       "WFI06": {"amplitude": None, "time_constant": None}}
    assert roman.reference_meta(tmp_path / "decay.asdf")["instrument"]["detector"] == "ANY"

    inl = rdm.IntegralnonlinearityRefModel.create_fake_data()
    inl.value = np.arange(0, 65536, 4096, dtype=np.uint16)
    inl.meta.n_channels, inl.meta.n_pixels_per_channel = 3, 128
    inl.inl_table = {f"science_channel_{n:02d}": {"instrument_channel": n - 1,
                                                  "correction": np.full(16, float(n)) if n != 2 else None}
                     for n in (3, 1, 2)}
    inl.save(tmp_path / "inl.asdf")
    ref = dm.open(tmp_path / "inl.asdf")
    assert isinstance(ref, dm.IntegralNonlinearityRefModel) and ref.meta.input_counts == "raw"
    np.testing.assert_array_equal(ref.value, np.arange(0, 65536, 4096))
    np.testing.assert_array_equal(ref.correction[:, 0], [1.0, 0.0, 3.0])

    inl.inl_table = {"science_channel_01": inl.inl_table["science_channel_01"],
                     "science_channel_03": inl.inl_table["science_channel_03"]}
    inl.save(tmp_path / "gap.asdf")
    with pytest.raises(dm.DataModelError, match="without gaps"):
        dm.open(tmp_path / "gap.asdf")


def test_dark_decay_and_integral_nonlinearity_references_are_written(tmp_path):
    decay = dm.DarkDecaySignalRefModel(
        meta={"reftype": "darkdecaysignal", "instrument": {"name": "WFI", "detector": "ANY"},
              "useafter": "2020-01-01T00:00:00"},
        decay_table={"WFI18": {"amplitude": 5.0, "time_constant": 9.0}})
    roman.write_reference(tmp_path / "decay.asdf", "darkdecaysignal", decay)
    inl = dm.IntegralNonlinearityRefModel(
        meta={"reftype": "integralnonlinearity", "instrument": {"name": "WFI", "detector": "WFI18"},
              "useafter": "2020-01-01T00:00:00"},
        value=np.array([0, 100, 65535], np.uint16), correction=np.arange(6.0).reshape(2, 3))
    roman.write_reference(tmp_path / "inl.asdf", "integralnonlinearity", inl)
    with rdm.open(tmp_path / "decay.asdf") as out:
        out.validate()
        assert out.meta.instrument.detector == "WFI18" and out.decay_table["WFI18"]["time_constant"] == 9.0
    with rdm.open(tmp_path / "inl.asdf") as out:
        out.validate()
        # WFI18 is mirrored in x: science channel 1 is the detector's last
        assert out.inl_table["science_channel_01"]["instrument_channel"] == 1
        np.testing.assert_array_equal(out.inl_table["science_channel_02"]["correction"], [3.0, 4.0, 5.0])
    back = dm.open(tmp_path / "inl.asdf")
    np.testing.assert_array_equal(back.correction, inl.correction)


def test_segmentation_map_follows_the_image_format(tmp_path):
    from calpipe.datamodels.roman import write_segmentation
    from calpipe.steps.source_catalog import SourceCatalogStep

    meta = {"instrument": {"name": "WFI", "detector": "WFI03", "optical_element": "F158"},
            "exposure": {"type": "WFI_IMAGE", "start_time": "2027-01-01T00:00:00", "nresultants": 6,
                         "read_pattern": PATTERN, "frame_time": 3.04},
            "roman": {"telescope": "ROMAN"}}
    image = dm.ImageModel(meta=meta, data=np.zeros((8, 8), np.float32))
    assert SourceCatalogStep().roman_products(image)
    assert not SourceCatalogStep(output_format="calpipe").roman_products(image)
    del meta["roman"]
    assert not SourceCatalogStep().roman_products(dm.ImageModel(meta=meta, data=np.zeros((8, 8), np.float32)))
    labels = np.zeros((8, 8), np.int32)
    labels[2:4, 2:5] = 1
    write_segmentation(labels, meta, tmp_path / "x_segm.asdf")
    with rdm.open(tmp_path / "x_segm.asdf") as segm:
        segm.validate()
        assert type(segm).__name__ == "SegmentationMapModel" and segm.meta.instrument.detector == "WFI03"
        np.testing.assert_array_equal(segm.data, labels)


def test_a_converted_exposure_lets_go_of_its_arrays_when_closed(tmp_path):
    path = tmp_path / "r_uncal.asdf"
    written = make_raw(path)
    raw = dm.open(path)
    np.testing.assert_array_equal(raw.data, written.data)  # neither reference read nor offset
    assert "groupdq" not in raw  # nothing to flag: dq_init starts from zeros
    raw.close()
    assert "data" not in raw and "amp33" not in raw
    assert raw.meta.filename == "r_uncal.asdf"
    # a model made in memory keeps its arrays
    model = dm.RawModel(meta=raw.meta.to_dict(), data=written.data)
    model.close()
    assert "data" in model


def test_a_product_that_does_not_validate_is_one_error_and_no_file(tmp_path):
    product = rdm.ImageModel.create_fake_data(shape=(8, 8))
    product.data = np.zeros((8, 8), np.int64)  # the schema wants float32
    target = tmp_path / "x_cal.asdf"
    with pytest.raises(dm.DataModelError, match="x_cal.asdf: the Roman Level-2 image does not validate"):
        roman._validated_write(product, target, "Level-2 image")
    assert not target.exists()


def test_a_product_must_replace_every_array_of_the_maker(tmp_path):
    product, blanks = roman._blank(rdm.ImageModel)
    assert {name for name, value in product.items() if isinstance(value, np.ndarray)} >= {"data", "dq", "err"}
    for name, value in list(product.items()):
        if isinstance(value, np.ndarray) and name != "dumo":
            product[name] = np.zeros((4, 4) if value.ndim == 2 else (1, 4, 4), value.dtype)
    target = tmp_path / "x_cal.asdf"
    with pytest.raises(dm.DataModelError, match="calpipe does not fill the arrays dumo of the Roman Level-2 image"):
        roman._validated_write(product, target, "Level-2 image", blanks)
    assert not target.exists()
    product.dumo = np.zeros((4, 4), np.float16)
    roman._validated_write(product, target, "Level-2 image", blanks)
    assert target.exists()


def test_products_compress_the_arrays_lz4_makes_smaller_and_read_back_whole(tmp_path):
    rng = np.random.default_rng(3)
    size = 512
    product = rdm.ImageModel.create_fake_data(shape=(size, size))
    product.data = rng.normal(100, 5, (size, size)).astype(np.float32)  # noise: lz4 cannot shrink it
    product.dq = np.zeros((size, size), np.uint32)
    product.dq[::7, ::5] = dqflags.JUMP_DET
    product.err = np.abs(rng.normal(1, 0.1, (size, size))).astype(np.float16)
    calpipe_path = roman._validated_write(product, tmp_path / "a_cal.asdf", "Level-2 image")
    product.to_asdf(tmp_path / "b_cal.asdf")  # roman_datamodels' own: every array lz4
    with asdf.open(calpipe_path, validate_checksums=True) as af:
        stored = {name: af.get_array_compression(af["roman"][name]) for name in ("data", "dq", "err", "dumo")}
    assert stored == {"data": None, "dq": "lz4", "err": None, "dumo": "lz4"}
    assert os.path.getsize(calpipe_path) <= os.path.getsize(tmp_path / "b_cal.asdf")
    with rdm.open(calpipe_path) as ours, rdm.open(tmp_path / "b_cal.asdf") as theirs:
        ours.validate()
        assert type(ours) is type(theirs)
        for name in ("data", "dq", "err", "var_poisson", "amp33", "border_ref_pix_left"):
            np.testing.assert_array_equal(ours[name], theirs[name])
        # the same metadata but what to_asdf stamps on its file (its name and date)
        meta = [{key: value for key, value in model.meta.to_flat_dict().items()
                 if key.split(".")[-1] not in ("filename", "file_date", "wcs")} for model in (ours, theirs)]
        assert meta[0] == meta[1]
        assert ours.meta.wcs(10, 20) == theirs.meta.wcs(10, 20)


def test_lz4_is_judged_on_samples_spread_over_the_array():
    assert roman._lz4_pays(np.zeros(2**22, np.float32))
    assert not roman._lz4_pays(np.random.default_rng(1).random(2**22).astype(np.float32))
    half = np.zeros(2**22, np.float32)
    half[: 2**21] = np.random.default_rng(1).random(2**21)  # two of four samples compress
    assert roman._lz4_pays(half)
    assert not roman._lz4_pays(np.random.default_rng(1).random(1000))  # small: judged whole


def test_roman_datamodels_still_keeps_its_tree_where_calpipe_takes_it():
    # calpipe's one use of a private roman_datamodels attribute: this fails first when it moves
    product = rdm.ImageModel.create_fake_data(shape=(8, 8))
    node = roman._node(product)
    assert node is not product and node["data"] is product.data and node.tag == product._instance.tag


def test_reduced_precision_arrays_clip_finite_values_and_keep_the_rest():
    values = np.random.default_rng(2).normal(0, 3e4, (300, 40)).astype(np.float32)
    values[0, :7] = [np.inf, -np.inf, np.nan, 7e4, -1e30, 65519, 65521]  # 65521 would round to inf
    converted = roman._float16(values, rows_at_once=7)
    limit = np.finfo(np.float16).max
    expected = np.where(np.isinf(values), values, np.clip(values, -limit, limit)).astype(np.float16)
    np.testing.assert_array_equal(converted, expected)
    edges = converted[0, :7]
    assert np.isnan(edges[2])
    np.testing.assert_array_equal(edges[[0, 1, 3, 4, 5, 6]], [np.inf, -np.inf, limit, -limit, limit, limit])
