import asdf
import numpy as np
import pytest
from astropy.table import Table

from calpipe import datamodels as dm
from calpipe import dqflags
from calpipe.kernels.wcs import build_wcs
from calpipe.references import RefStore
from calpipe.simulate import default_read_pattern, exposure_root, simulate

REFTYPES = ["mask", "saturation", "linearity", "dark", "gain", "readnoise", "flat", "photom", "distortion"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    messages = []
    out = tmp_path_factory.mktemp("sim")
    result = simulate(out, size=64, nresultants=5, seed=4, progress=messages.append)
    return result, messages


def test_root_name():
    assert exposure_root() == "cp00001001001_0001_wfi01"
    assert exposure_root(12, 3, 4, 5, "WFI07") == "cp00012003004_0005_wfi07"


def test_uncal_file(sim):
    result, messages = sim
    assert result.uncal.name == "cp00001001001_0001_wfi01_uncal.asdf"
    assert result.truth.name == "cp00001001001_0001_wfi01_truth.asdf"
    assert any("resultant 5/5" in m for m in messages)
    with dm.open(result.uncal) as raw:
        assert isinstance(raw, dm.RawModel)
        assert raw.data.shape == (5, 64, 64) and raw.data.dtype == np.uint16
        meta = raw.meta
        assert meta.telescope == "ROMAN"
        assert meta.instrument.name == "WFI" and meta.instrument.detector == "WFI01"
        assert meta.instrument.optical_element == "F158"
        assert meta.exposure.type == "WFI_IMAGE" and meta.exposure.nresultants == 5
        assert list(map(list, meta.exposure.read_pattern)) == default_read_pattern(5)
        assert meta.exposure.exposure_time == pytest.approx(3.04 * default_read_pattern(5)[-1][-1])
        assert meta.observation.program == 1 and meta.observation.exposure == 1
        # bias pedestal of thousands of DN everywhere
        assert np.asarray(raw.data).min() > 3000


def test_truth_file(sim):
    result, _ = sim
    with asdf.open(result.truth) as af:
        t = af.tree
        for name in ["slope", "flux", "dark", "flat", "jumps", "saturated", "saturated_read"]:
            assert t[name].shape == (56, 56), name
        assert t["saturated"].dtype == bool and t["jumps"].dtype.kind == "i"
        hits = t["cosmic_rays"]
        assert set(hits.colnames) == {"y", "x", "read", "amplitude"} and len(hits) == np.sum(t["jumps"])
        np.testing.assert_array_equal(np.asarray(t["saturated_read"]) > 0, t["saturated"])
        np.testing.assert_allclose(
            np.asarray(t["slope"]), np.asarray(t["flux"]) * t["flat"] + t["dark"], rtol=1e-5, atol=1e-6)
        src = t["sources"]
        assert set(src.colnames) == {"x", "y", "ra", "dec", "flux", "source_id"} and len(src) >= 1
        assert t["bias"]["channel"].shape == (5, 32) and t["bias"]["row"].shape == (5, 64)
        assert t["meta"]["seed"] == 4


def test_sky_truth_pointing_and_reference_catalog(sim):
    """Stars sit where the true WCS puts them; the raw pointing carries the recorded error."""
    result, _ = sim
    with asdf.open(result.truth, lazy_load=False) as af:
        meta, src = af.tree["meta"], af.tree["sources"].copy()
    with dm.open(result.uncal) as raw, dm.open(result.ref_files["distortion"]) as ref:
        written = raw.meta.wcsinfo.to_dict()
        true_wcs = build_wcs(ref.coordinate_distortion_transform, meta["wcsinfo"], (56, 56))
    ra, dec = true_wcs(np.asarray(src["x"]), np.asarray(src["y"]))
    np.testing.assert_allclose(ra, src["ra"], atol=1e-9)
    np.testing.assert_allclose(dec, src["dec"], atol=1e-9)
    error = meta["pointing_error"]
    assert np.hypot(error["dra_arcsec"], error["ddec_arcsec"]) == pytest.approx(0.5)
    assert abs(error["droll_deg"]) == pytest.approx(0.05)
    assert written["roll_ref"] - meta["wcsinfo"]["roll_ref"] == pytest.approx(error["droll_deg"])
    assert (written["dec_ref"] - meta["wcsinfo"]["dec_ref"]) * 3600 == pytest.approx(error["ddec_arcsec"], abs=1e-4)
    refcat = Table.read(result.refcat)
    assert {"ra", "dec", "pmra", "pmdec", "ref_epoch"} <= set(refcat.colnames)
    # Every star on the detector is in the catalog, unless dropped as Gaia misses some.
    assert np.isin(src["source_id"], refcat["source_id"]).mean() >= 0.5


def test_references_registered_and_consistent(sim):
    result, _ = sim
    store = RefStore(result.refs)
    with dm.open(result.uncal) as raw:
        meta = {"instrument": raw.meta.instrument.to_dict(), "exposure": raw.meta.exposure.to_dict()}
    for reftype in REFTYPES:
        path = store.best(reftype, meta)
        with dm.open(path) as ref:
            assert ref.meta.reftype == reftype
            assert ref.meta.instrument.detector == "WFI01"
    with dm.open(store.best("linearity", meta)) as lin:
        coeffs = np.asarray(lin.coeffs)
        assert coeffs.shape == (6, 64, 64) and coeffs.dtype == np.float32
        bad = (np.asarray(lin.dq) & dqflags.NO_LIN_CORR) != 0
        assert bad.any()
        assert (np.isnan(coeffs) | (coeffs == 0)).all(axis=0)[bad].all()
    with dm.open(store.best("saturation", meta)) as sat:
        thr = np.asarray(sat.data)
        assert np.isnan(thr).any()
        assert ((np.asarray(sat.dq) & dqflags.NO_SAT_CHECK) != 0)[np.isnan(thr)].all()
        assert 40000 < np.nanmedian(thr) < 65535
    with dm.open(store.best("mask", meta)) as mask:
        dq = np.asarray(mask.dq)
        assert (dq[:4] & dqflags.REFERENCE_PIXEL).all() and (dq[:, -4:] & dqflags.REFERENCE_PIXEL).all()
        assert (dq & dqflags.DEAD).any()
    with dm.open(store.best("dark", meta)) as dark:
        assert dark.meta.temperature == pytest.approx(95.0)
    with dm.open(store.best("photom", meta)) as phot:
        assert phot.phot_table["F158"]["pixelareasr"] == pytest.approx(2.84e-13, rel=0.01)


def test_same_seed_identical_files(tmp_path):
    a = simulate(tmp_path / "a", size=64, nresultants=3, seed=2)
    b = simulate(tmp_path / "b", size=64, nresultants=3, seed=2)
    c = simulate(tmp_path / "c", size=64, nresultants=3, seed=3)
    with dm.open(a.uncal) as ra, dm.open(b.uncal) as rb, dm.open(c.uncal) as rc:
        np.testing.assert_array_equal(np.asarray(ra.data), np.asarray(rb.data))
        assert not np.array_equal(np.asarray(ra.data), np.asarray(rc.data))
    for reftype in ["linearity", "flat", "saturation"]:
        with dm.open(a.ref_files[reftype]) as x, dm.open(c.ref_files[reftype]) as y:
            # one detector, one reference set, whatever the exposure seed
            key = "coeffs" if reftype == "linearity" else "data"
            np.testing.assert_array_equal(np.asarray(getattr(x, key)), np.asarray(getattr(y, key)))
    assert a.truth.read_bytes() == b.truth.read_bytes()


def test_fully_saturated_file(tmp_path):
    result = simulate(tmp_path, size=64, nresultants=4, seed=1, fully_saturated=True)
    with dm.open(result.uncal) as raw, dm.open(result.ref_files["saturation"]) as sat:
        data = np.asarray(raw.data).astype(np.float32)
        thr = np.asarray(sat.data)
        finite = np.isfinite(thr)
        assert (data[:, finite] >= thr[finite]).all()
    with asdf.open(result.truth) as af:
        assert np.asarray(af.tree["saturated"]).all()


def test_custom_read_pattern(tmp_path):
    pattern = [[1, 2], [5], [6, 7, 8]]
    result = simulate(tmp_path, size=64, read_pattern=pattern, frame_time=2.0, seed=0, exposure=7)
    assert result.root == "cp00001001001_0007_wfi01"
    with dm.open(result.uncal) as raw:
        assert raw.data.shape[0] == 3
        assert raw.meta.exposure.exposure_time == pytest.approx(16.0)
        assert raw.meta.exposure.frame_time == pytest.approx(2.0)
