"""Alignment on synthetic fields with a known pointing error (kernel level)."""

import numpy as np
import pytest
from astropy.table import Table
from scipy.spatial import cKDTree

from calpipe.kernels import alignment as ka
from calpipe.kernels import catalog as kc
from calpipe.kernels import wcs as kw
from support.sky_field import EPOCH, Field


def _exposure(field, k):
    model = field.models[k]
    wcs = kw.build_wcs(field.distortion, model.meta.wcsinfo.to_dict(), model.data.shape)
    table, _ = kc.source_catalog(model.data, model.err, wcs=wcs)
    good = table[(table["flags"] == 0) & (table["kron_flux"] / table["kron_flux_err"] > 10)]
    return {"wcs": wcs, "wcsinfo": model.meta.wcsinfo.to_dict(), "name": f"e{k}", "table": good,
            "catalog": Table({"x": good["x_centroid_win"], "y": good["y_centroid_win"]})}


def _sep_to_truth_mas(wcs, table, truth):
    ra, dec = ka.sky_positions(wcs, table["x_centroid_win"], table["y_centroid_win"])
    cosd = np.cos(np.radians(truth["dec"].mean()))
    tree = cKDTree(np.column_stack([truth["ra"] * cosd, truth["dec"]]))
    dist, _ = tree.query(np.column_stack([ra * cosd, dec]))
    return dist * 3.6e6


@pytest.fixture(scope="module")
def single(distortion):
    field = Field(distortion, 600, seed=3)
    return field, _exposure(field, 0)


def test_absolute_alignment_recovers_the_pointing(single):
    field, exp = single
    truth, error = field.truths[0], field.errors[0]
    before = np.median(_sep_to_truth_mas(exp["wcs"], exp["table"], truth))
    result = ka.align([exp], field.refcat, epoch=EPOCH)[0]
    assert result["status"] == "SUCCESS", result["reason"]
    after = np.median(_sep_to_truth_mas(result["wcs"], exp["table"], truth))
    assert before > 300 and after < 10  # mas
    fit = result["absolute"]
    assert fit["nmatches"] >= 100 and fit["rms"] < 0.02
    # The fit undoes the injected roll (tweakwcs' rotation has the opposite sign of the roll error).
    # On this 512-pixel field the lever arm is 4 times shorter than a full detector's: 8 arcsec.
    assert abs(fit["rotation"] + error["droll_deg"]) * 3600 < 8
    # The corrected WCS points where the true one does, at the field centre.
    dra, ddec, rot = ka.wcs_offset(truth["wcs"], result["wcs"], 255.5, 255.5)
    assert np.hypot(dra, ddec) < 0.005 and abs(rot) < 8
    # The input WCS was not modified in place.
    assert np.median(_sep_to_truth_mas(exp["wcs"], exp["table"], truth)) == pytest.approx(before)


def test_proper_motions_matter_and_are_applied(single):
    field, exp = single
    stale = ka.align([exp], field.refcat, epoch=None)[0]  # reference positions left at 2016
    assert "used as they are" in stale["refcat_note"]
    good = ka.align([exp], field.refcat, epoch=EPOCH)[0]
    assert "applied from epoch 2016.000" in good["refcat_note"]
    # 8 mas/yr per axis over 11.4 years: the stale fit leaves residuals of ~100 mas.
    assert stale["status"] == "SUCCESS" and good["status"] == "SUCCESS"
    assert stale["absolute"]["rms"] > 0.05 > 5 * good["absolute"]["rms"]


def test_relative_alignment_of_a_dithered_set(distortion):
    field = Field(distortion, 500, seed=5, nexposures=3)
    exps = [_exposure(field, k) for k in range(3)]

    # Identify each detected source with its true star (within 1 pixel in its own image).
    ids = []
    for k, e in enumerate(exps):
        truth = field.truths[k]
        dist, idx = cKDTree(np.column_stack([truth["x"], truth["y"]])).query(
            np.column_stack([e["table"]["x_centroid_win"], e["table"]["y_centroid_win"]]))
        ids.append(np.where(dist < 1.0, idx, -1))

    def overlap_rms_pixels(wcss):
        residuals = []
        for a in range(3):
            for b in range(a + 1, 3):
                common, ia, ib = np.intersect1d(ids[a], ids[b], return_indices=True)
                ia, ib = ia[common >= 0], ib[common >= 0]
                ra_a, dec_a = ka.sky_positions(wcss[a], exps[a]["table"]["x_centroid_win"][ia], exps[a]["table"]["y_centroid_win"][ia])
                ra_b, dec_b = ka.sky_positions(wcss[b], exps[b]["table"]["x_centroid_win"][ib], exps[b]["table"]["y_centroid_win"][ib])
                d = np.hypot((ra_a - ra_b) * np.cos(np.radians(dec_a)), dec_a - dec_b) * 3600 / 0.11
                residuals.append(d)
        residuals = np.concatenate(residuals)
        return np.sqrt(np.mean(residuals**2)), len(residuals)

    before, _ = overlap_rms_pixels([e["wcs"] for e in exps])
    results = ka.align(exps, None)
    assert [r["status"] for r in results] == ["SUCCESS"] * 3
    assert sum(bool(r["relative"].get("reference")) for r in results) == 1
    after, n = overlap_rms_pixels([r["wcs"] for r in results])
    assert before > 1.0 and n > 100
    assert after < 0.05
    # The input WCSs were not modified in place.
    assert overlap_rms_pixels([e["wcs"] for e in exps])[0] == pytest.approx(before)


@pytest.mark.parametrize("nstars", [0, 3])
def test_too_few_sources_fail_without_exception(distortion, nstars):
    field = Field(distortion, nstars, seed=9, flux_range=(3000.0, 5000.0))
    exp = _exposure(field, 0)
    assert len(exp["catalog"]) <= 3
    result = ka.align([exp], field.refcat, epoch=EPOCH)[0]
    assert result["status"] == "FAILED"
    assert "at least 15 needed" in result["reason"]
    assert result["wcs"] is exp["wcs"]


def test_single_exposure_without_reference_is_skipped(single):
    _, exp = single
    result = ka.align([exp], None)[0]
    assert result["status"] == "SKIPPED" and "no reference catalog" in result["reason"]
    assert result["wcs"] is exp["wcs"]


def test_reference_catalog_columns_and_epoch():
    table = Table({"RA_ICRS": [10.0], "DE_ICRS": [20.0], "pmRA": [100.0], "pmDE": [0.0]})
    table.meta["epoch"] = 2000.0
    out, note = ka.reference_at_epoch(table, 2010.0)
    assert out["RA"][0] == pytest.approx(10.0 + 1.0 / 3600 / np.cos(np.radians(20.0)), abs=1e-9)
    assert "from epoch 2000.000" in note
    with pytest.raises(KeyError):
        ka.reference_at_epoch(Table({"x": [1.0]}), 2010.0)


def test_point_on_arc_answers_as_spherical_geometry_compiled_test():
    from spherical_geometry import math_util

    rng = np.random.default_rng(11)
    for _ in range(20):
        a = rng.normal(size=3)
        a /= np.linalg.norm(a)
        b = a + rng.uniform(1e-4, 0.5) * rng.normal(size=3)  # arcs of arcseconds to tens of degrees
        b /= np.linalg.norm(b)
        t = rng.uniform(0.05, 0.95, 50)  # away from the ends, where arccos loses precision
        on = a[None] * (1 - t[:, None]) + b[None] * t[:, None]  # on the arc once normalised
        on /= np.linalg.norm(on, axis=1)[:, None]
        normal = np.cross(a, b) / np.linalg.norm(np.cross(a, b))
        near = on + 1e-4 * normal  # 20 arcsec off the arc
        near /= np.linalg.norm(near, axis=1)[:, None]
        beyond = on - 1.5 * (b - a)[None]  # on the great circle, outside the arc
        beyond /= np.linalg.norm(beyond, axis=1)[:, None]
        anywhere = rng.normal(size=(50, 3))
        anywhere /= np.linalg.norm(anywhere, axis=1)[:, None]
        points = np.concatenate([on, near, beyond, anywhere, [a, b]])
        got = ka.point_on_arc(a, b, points)
        np.testing.assert_array_equal(got, math_util.intersects_point(a, b, points))
        assert got[:50].all() and not got[50:200].any() and got[-2:].all()
