"""tweakreg as a step: absolute and relative alignment, reference-catalog formats, failures with a
reason, products, and no network."""

import logging

import numpy as np
import pytest
from astropy.table import Table
from support.sky_field import Field, calibrate_sky, refcat_file

from calpipe import datamodels as dm
from calpipe.steps.tweakreg import TweakRegStep


def test_steps_align_offline_and_write_products(field, distortion_file, tmp_path, no_network):
    model = field.models[0].copy()
    model = calibrate_sky(model, distortion_file, save_results=True, output_dir=str(tmp_path))
    assert model.meta.cal_step.assign_wcs == "COMPLETE"
    assert model.meta.ref_file.distortion == distortion_file
    assert model.meta.wcsinfo.s_region.startswith("POLYGON ICRS")
    assert model.meta.source_catalog.n_sources == len(model.source_catalog) > 100
    assert (tmp_path / "field1_cat.ecsv").exists() and (tmp_path / "field1_segm.asdf").exists()
    with dm.open(tmp_path / "field1_segm.asdf") as segm:
        assert isinstance(segm, dm.SegmentationModel) and segm.data.max() == len(model.source_catalog)
    before = Table(model.source_catalog, copy=True)

    refcat = refcat_file(field, tmp_path / "gaia.ecsv")
    result = TweakRegStep.call(model, abs_refcat=refcat, save_results=True, output_dir=str(tmp_path))
    assert result.meta.cal_step.tweakreg == "COMPLETE"
    fit = result.meta.wcs_fit_results
    assert fit.status == "COMPLETE" and fit.absolute["nmatches"] >= 100
    assert np.hypot(fit.correction["dra_arcsec"], fit.correction["ddec_arcsec"]) > 0.3
    # Catalog sky positions follow the aligned WCS.
    moved = np.hypot((result.source_catalog["ra"] - before["ra"]) * np.cos(np.radians(before["dec"])),
                     result.source_catalog["dec"] - before["dec"]) * 3600
    assert np.median(moved) > 0.3
    truth = field.truths[0]
    ra, dec = truth["wcs"](result.source_catalog["x_centroid_win"], result.source_catalog["y_centroid_win"],
                           with_bounding_box=False)
    after = np.hypot((result.source_catalog["ra"] - ra) * np.cos(np.radians(dec)), result.source_catalog["dec"] - dec)
    assert np.median(after) * 3.6e6 < 10  # mas
    with dm.open(tmp_path / "field1_wcs.asdf") as product:
        assert isinstance(product, dm.WcsModel)
        np.testing.assert_allclose(product.wcs(100.0, 200.0), result.meta.wcs(100.0, 200.0))
        assert product.meta.wcs_fit_results["status"] == "COMPLETE"
    written = Table.read(tmp_path / "field1_cat.ecsv")
    np.testing.assert_allclose(written["ra"], result.source_catalog["ra"])
    # The calibrated image keeps its WCS and catalog through a save.
    path = result.save(tmp_path / "field1_cal.asdf")
    with dm.open(path) as back:
        np.testing.assert_allclose(back.meta.wcs(10.0, 20.0), result.meta.wcs(10.0, 20.0))
        assert len(back.source_catalog) == len(result.source_catalog)


@pytest.mark.parametrize("fmt, ext", [("parquet", "parquet"), ("fits", "fits")])
def test_parquet_and_fits_reference_catalogs(field, distortion_file, tmp_path, fmt, ext):
    model = calibrate_sky(field.models[0].copy(), distortion_file)
    refcat = refcat_file(field, tmp_path / f"gaia.{ext}", fmt)
    result = TweakRegStep.call(model, abs_refcat=refcat)
    assert result.meta.cal_step.tweakreg == "COMPLETE"
    assert "proper motions applied" in result.meta.wcs_fit_results.refcat_note


@pytest.mark.parametrize("nstars", [0, 3])
def test_sparse_fields_fail_with_a_reason(distortion, distortion_file, tmp_path, caplog, nstars):
    sparse = Field(distortion, nstars, seed=9, flux_range=(3000.0, 5000.0))
    model = calibrate_sky(sparse.models[0], distortion_file)
    assert len(model.source_catalog) <= 3
    original = model.meta.wcs
    refcat = refcat_file(Field(distortion, 200, seed=1), tmp_path / "gaia.ecsv")
    with caplog.at_level(logging.INFO):
        result = TweakRegStep.call(model, abs_refcat=refcat)
    assert result.meta.cal_step.tweakreg == "FAILED"
    assert "at least 15 needed" in result.meta.wcs_fit_results.reason
    assert result.meta.wcs is original
    assert "tweakreg FAILED" in caplog.text and "at least 15 needed" in caplog.text


def test_no_reference_catalog_single_exposure_is_skipped(field, distortion_file, caplog):
    model = calibrate_sky(field.models[0].copy(), distortion_file)
    with caplog.at_level(logging.INFO):
        result = TweakRegStep.call(model)
    assert result.meta.cal_step.tweakreg == "SKIPPED"
    assert "relative alignment only" in caplog.text


def test_missing_reference_file_fails_but_does_not_crash(field, distortion_file, tmp_path):
    model = calibrate_sky(field.models[0].copy(), distortion_file)
    result = TweakRegStep.call(model, abs_refcat=str(tmp_path / "absent.ecsv"))
    assert result.meta.cal_step.tweakreg == "FAILED"
    assert "no such reference catalog" in result.meta.wcs_fit_results.reason


def test_dithered_list_relative_only_and_saturated_member(distortion, distortion_file):
    dithered = Field(distortion, 400, seed=5, nexposures=3)
    models = [calibrate_sky(m, distortion_file) for m in dithered.models]
    results = TweakRegStep.call(models)
    assert [m.meta.cal_step.tweakreg for m in results] == ["COMPLETE"] * 3
    assert all("absolute" not in m.meta.wcs_fit_results for m in results)
    # A fully saturated member makes tweakreg skip the association.
    models = [calibrate_sky(m, distortion_file) for m in dithered.models]
    models[1].dq[...] |= dm.dqflags.SATURATED
    results = TweakRegStep.call(models)
    assert [m.meta.cal_step.tweakreg for m in results] == ["SKIPPED"] * 3
