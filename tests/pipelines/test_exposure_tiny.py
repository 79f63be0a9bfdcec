"""The exposure pipeline on a tiny noiseless exposure whose calibrated values are known exactly."""

import numpy as np
import pytest
from support.tiny_data import BAD_LIN, DARK_RATE, DEAD, HALF_FLAT, NAN_FLAT, tiny_rate, write_tiny_exposure

from calpipe import datamodels as dm
from calpipe import dqflags
from calpipe.pipelines import ExposurePipeline

STEPS = ["dq_init", "saturation", "refpix", "linearity", "ramp_fit", "dark_current", "flat_field", "photom"]


def sci(y, x):
    return y - 4, x - 4


@pytest.fixture
def cal(tiny, tmp_path):
    uncal, store = tiny
    ExposurePipeline.call(uncal, output_dir=str(tmp_path / "out"), save_results=True)
    path = tmp_path / "out" / "cp00001001001_0001_wfi01_cal.asdf"
    with dm.open(path) as model:
        yield model


def test_calibrated_values_are_exact(cal):
    expected = (tiny_rate() - DARK_RATE)[4:-4, 4:-4].copy()
    expected[sci(*HALF_FLAT)] /= 0.5
    good = (cal.dq & dqflags.DO_NOT_USE) == 0
    good[sci(*NAN_FLAT)] = good[sci(*BAD_LIN)] = False
    np.testing.assert_allclose(cal.data[good], expected[good], rtol=1e-5, atol=1e-4)
    assert cal.data.shape == (56, 56)


def test_flags_from_references(cal):
    assert cal.dq[sci(*DEAD)] & dqflags.DEAD
    assert cal.dq[sci(*NAN_FLAT)] & dqflags.NO_FLAT_FIELD
    assert cal.dq[sci(*BAD_LIN)] & dqflags.NO_LIN_CORR
    assert not cal.dq[sci(*HALF_FLAT)] & dqflags.NO_FLAT_FIELD
    assert not np.any(cal.dq & dqflags.REFERENCE_PIXEL)  # the border is gone


def test_variances_follow_the_noise_model(cal):
    # err combines the three variances; the flat's 1% error shows up in var_flat
    np.testing.assert_allclose(cal.err**2, cal.var_poisson + cal.var_rnoise + cal.var_flat, rtol=1e-4)
    relative_flat_err = np.full(cal.data.shape, 0.01)
    relative_flat_err[sci(*HALF_FLAT)] = 0.01 / 0.5
    good = (cal.dq & (dqflags.DO_NOT_USE | dqflags.NO_FLAT_FIELD)) == 0
    np.testing.assert_allclose(cal.var_flat[good], (cal.data * relative_flat_err)[good] ** 2, rtol=1e-3)
    assert cal.var_flat[sci(*NAN_FLAT)] == 0
    assert np.all(cal.var_rnoise[good] > 0)


def test_bookkeeping(cal, tiny):
    _, store = tiny
    assert {k: cal.meta.cal_step[k] for k in STEPS} == dict.fromkeys(STEPS, "COMPLETE")
    assert set(cal.meta.ref_file) >= {"mask", "saturation", "linearity", "dark", "gain", "readnoise", "flat", "photom"}
    assert cal.meta.ref_file.dark == str(store / "tiny_dark.asdf")
    for step in [*STEPS, "exposure_pipeline"]:
        usage = cal.meta.resources[step]
        assert usage["wall_seconds"] >= 0 and usage["peak_rss_mb"] > 10
    # No pointing in the tiny exposure: no WCS, a catalog without sky positions, nothing to align.
    assert cal.meta.cal_step.assign_wcs == "SKIPPED" and cal.meta.cal_step.tweakreg == "SKIPPED"
    assert cal.meta.cal_step.source_catalog == "COMPLETE"
    # calpipe's own references hold no dark decay, and the detector is not WFI18
    assert cal.meta.cal_step.dark_decay == "SKIPPED" and cal.meta.cal_step.wfi18_transient == "SKIPPED"
    assert cal.meta.wcs_fit_results.reason == "no WCS (assign_wcs not run)"
    assert len(cal.meta.cal_logs) == len(STEPS) + 6
    assert cal.meta.photometry.conversion_megajanskys == 0.5
    assert cal.meta.photometry.pixelarea_arcsecsq == pytest.approx(2.8e-13 * (180 / np.pi * 3600) ** 2)


def test_skip_marks_skipped_and_leaves_data(tiny, tmp_path):
    uncal, _ = tiny
    out = tmp_path / "skip"
    ExposurePipeline.call(uncal, output_dir=str(out), save_results=True, steps={"dark_current": {"skip": True}})
    with dm.open(out / "cp00001001001_0001_wfi01_cal.asdf") as model:
        assert model.meta.cal_step.dark_current == "SKIPPED"
        expected = tiny_rate()[4:-4, 4:-4]
        assert model.data[20, 20] == pytest.approx(expected[20, 20], rel=1e-5)


def test_fully_saturated_exposure(tiny, tmp_path):
    _, store = tiny
    rate = np.full((64, 64), 70000.0)  # the first read alone is past the 60000 DN threshold
    uncal = write_tiny_exposure(tmp_path / "sat_uncal.asdf", rate=rate)
    out = tmp_path / "sat"
    ExposurePipeline.call(str(uncal), output_dir=str(out), save_results=True)
    with dm.open(out / "sat_cal.asdf") as model:
        for name in ("data", "err", "var_poisson", "var_rnoise"):
            assert not np.any(getattr(model, name))
        assert np.all(model.dq & dqflags.SATURATED)
        assert model.meta.cal_step.saturation == "COMPLETE"
        later = [*STEPS[2:], "assign_wcs", "source_catalog", "tweakreg"]
        assert all(model.meta.cal_step[s] == "SKIPPED" for s in later)
        assert model.meta.wcs_fit_results.reason == "association holds a fully saturated exposure"


def test_spectral_exposure_skips_flat_catalog_and_alignment(tiny, tmp_path):
    uncal, _ = tiny
    with dm.open(uncal) as raw:
        raw.meta.exposure.type = "WFI_SPECTRAL"
        spectral = raw.save(tmp_path / "spec_uncal.asdf")
    ExposurePipeline.call(spectral, output_dir=str(tmp_path / "out"), save_results=True)
    with dm.open(tmp_path / "out" / "spec_cal.asdf") as model:
        status = model.meta.cal_step
        assert status.flat_field == status.source_catalog == status.tweakreg == "SKIPPED"
        assert status.ramp_fit == status.photom == "COMPLETE"
        assert "source_catalog" not in model
        assert not (tmp_path / "out" / "spec_cat.ecsv").exists()
