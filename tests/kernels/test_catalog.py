import numpy as np
import pytest
from astropy.table import Table
from scipy.spatial import cKDTree

from calpipe import dqflags
from calpipe.kernels import catalog as kc
from calpipe.kernels import wcs as kw
from support.sky_field import CONVERSION, GAIN_TIME, PIXEL_AREA, PSF_SIGMA, READ_VAR, SKY_RATE, render


@pytest.fixture(scope="module")
def measured(distortion):
    from support.sky_field import Field

    field = Field(distortion, 450, seed=12, pointing_error=False)
    model = field.models[0]
    wcs = kw.build_wcs(distortion, model.meta.wcsinfo.to_dict(), model.data.shape)
    table, segm = kc.source_catalog(model.data, model.err, wcs=wcs, deblend=True,
                                    conversion_megajanskys=CONVERSION, pixelarea_steradians=PIXEL_AREA)
    return field, table, segm


def _truth_snr(flux):
    npix = 4 * np.pi * PSF_SIGMA**2  # noise-equivalent area of a Gaussian PSF
    return flux / np.sqrt(flux / GAIN_TIME + npix * (SKY_RATE / GAIN_TIME + READ_VAR))


def test_completeness_above_snr_20_and_positions(measured):
    field, table, segm = measured
    truth = field.truths[0]
    ny, nx = field.shape
    inside = (truth["x"] > 3) & (truth["x"] < nx - 4) & (truth["y"] > 3) & (truth["y"] < ny - 4)
    strong = inside & (_truth_snr(truth["flux"]) > 20)
    assert strong.sum() > 60
    dist, idx = cKDTree(np.column_stack([table["x_centroid_win"], table["y_centroid_win"]])).query(
        np.column_stack([truth["x"], truth["y"]]))
    found = dist < 1.0
    assert np.mean(found[strong]) >= 0.95
    # Windowed centroids of bright stars to a few hundredths of a pixel.
    bright = strong & found & (_truth_snr(truth["flux"]) > 100)
    assert np.median(dist[bright]) < 0.03
    # Sky positions are the WCS of the windowed centroid: compare with the true positions.
    sep = np.hypot((table["ra"][idx[bright]] - truth["ra"][bright]) * np.cos(np.radians(truth["dec"][bright])),
                   table["dec"][idx[bright]] - truth["dec"][bright]) * 3.6e6
    assert np.median(sep) < 5.0  # mas
    # The segmentation map labels the catalog's sources.
    assert set(np.unique(segm)) - {0} == set(table["label"])


def test_flux_of_isolated_stars_within_2_percent(measured):
    field, table, _ = measured
    truth = field.truths[0]
    ny, nx = field.shape
    xy = np.column_stack([truth["x"], truth["y"]])
    tree = cKDTree(xy)
    neighbours = tree.query_ball_point(xy, 8.0)
    isolated = np.array([len(n) == 1 for n in neighbours])
    ok = isolated & (truth["x"] > 10) & (truth["x"] < nx - 11) & (truth["y"] > 10) & (truth["y"] < ny - 11)
    ok &= _truth_snr(truth["flux"]) > 20
    dist, idx = cKDTree(np.column_stack([table["x_centroid_win"], table["y_centroid_win"]])).query(xy[ok])
    ratio = table["kron_flux"][idx] / truth["flux"][ok]
    assert len(ratio) > 40
    assert abs(np.median(ratio) - 1) < 0.02
    # Errors describe the scatter: the normalized residuals have a spread near 1.
    pull = (table["kron_flux"][idx] - truth["flux"][ok]) / table["kron_flux_err"][idx]
    assert 0.6 < 1.4826 * np.median(np.abs(pull - np.median(pull))) < 1.6


def test_calibrated_fluxes_and_ab_magnitudes(measured):
    _, table, _ = measured
    njy = np.asarray(table["kron_flux"]) * CONVERSION * PIXEL_AREA * 1e15
    np.testing.assert_allclose(table["kron_flux_njy"], njy, rtol=1e-12)
    good = njy > 0
    # 3631 Jy is AB magnitude 0.
    np.testing.assert_allclose(table["kron_abmag"][good], -2.5 * np.log10(njy[good] * 1e-9 / 3631), rtol=1e-12)
    np.testing.assert_allclose(table["aper_r3_abmag_err"][good & (table["aper_r3_flux"] > 0)],
                               (1.0857362 * table["aper_r3_flux_err"] / table["aper_r3_flux"])[good & (table["aper_r3_flux"] > 0)],
                               rtol=1e-6)


def test_flags_for_edge_masked_and_saturated_sources():
    rng = np.random.default_rng(3)
    shape = (128, 128)
    x, y, flux = np.array([1.0, 60.0, 100.0, 30.0]), np.array([64.0, 60.0, 30.0, 100.0]), np.full(4, 3000.0)
    data, err, _ = render(shape, x, y, flux, rng)
    mask = np.zeros(shape, bool)
    mask[60, 61] = True
    saturated = np.zeros(shape, bool)
    saturated[30, 100] = True
    table, _ = kc.source_catalog(data, err, mask=mask, saturated=saturated)
    assert len(table) == 4
    found = cKDTree(np.column_stack([table["x_centroid"], table["y_centroid"]])).query(np.column_stack([x, y]))[1]
    flags = np.asarray(table["flags"])[found]
    assert flags[0] & kc.FLAG_EDGE
    assert flags[1] & kc.FLAG_MASKED and not flags[1] & kc.FLAG_EDGE
    assert flags[2] & kc.FLAG_SATURATED
    assert flags[3] == 0
    assert "kron_flux_njy" not in table.colnames  # no conversion given


def test_deblending_splits_a_close_pair():
    rng = np.random.default_rng(8)
    data, err, _ = render((64, 64), [30.0, 34.5], [32.0, 32.0], [5000.0, 3000.0], rng)
    merged, _ = kc.source_catalog(data, err)
    split, segm = kc.source_catalog(data, err, deblend=True)
    assert len(merged) == 1 and len(split) == 2
    assert np.all(split["flags"] & kc.FLAG_BLENDED)
    np.testing.assert_allclose(np.sort(split["x_centroid"]), [30.0, 34.5], atol=0.4)


def test_empty_and_fully_masked_images_give_empty_tables():
    rng = np.random.default_rng(1)
    data = (SKY_RATE + rng.normal(0, 0.1, (64, 64))).astype(np.float32)
    err = np.full((64, 64), 0.1, np.float32)
    table, segm = kc.source_catalog(data, err, conversion_megajanskys=1.0, pixelarea_steradians=1e-13)
    assert len(table) == 0 and not segm.any() and "kron_abmag" in table.colnames
    table, segm = kc.source_catalog(data, err, mask=np.ones((64, 64), bool))
    assert len(table) == 0 and isinstance(table, Table)
    assert dqflags.DO_NOT_USE == 1
