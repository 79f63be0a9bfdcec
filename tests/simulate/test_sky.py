import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from calpipe.kernels import wcs as kw
from calpipe.simulate import sky


def test_pointing_error_has_the_asked_size():
    info = sky.make_wcsinfo(10.0, 60.0, roll=5.0)
    true, perturbed, error = sky.inject_pointing_error(info, np.random.default_rng(2))
    assert true == info
    sep = SkyCoord(true["ra_ref"] * u.deg, true["dec_ref"] * u.deg).separation(
        SkyCoord(perturbed["ra_ref"] * u.deg, perturbed["dec_ref"] * u.deg))
    assert sep.to(u.arcsec).value == pytest.approx(0.5, abs=1e-6)
    assert np.hypot(error["dra_arcsec"], error["ddec_arcsec"]) == pytest.approx(0.5)
    assert abs(perturbed["roll_ref"] - true["roll_ref"]) == pytest.approx(0.05)


def test_propagation_matches_linear_proper_motion():
    ra, dec = np.array([30.0, 200.0]), np.array([10.0, -50.0])
    pmra, pmdec = np.array([100.0, -40.0]), np.array([-60.0, 25.0])  # mas/yr
    new_ra, new_dec = sky.propagate(ra, dec, pmra, pmdec, 2016.0, 2026.0)
    # Over 10 years a linear motion is right to well below a microarcsecond... per mas/yr squared.
    np.testing.assert_allclose((new_ra - ra) * np.cos(np.radians(dec)) * 3.6e6, pmra * 10, atol=0.01)
    np.testing.assert_allclose((new_dec - dec) * 3.6e6, pmdec * 10, atol=0.01)


def test_star_catalog_and_reference_catalog(tmp_path):
    rng = np.random.default_rng(4)
    stars = sky.make_star_catalog(150.0, 2.0, 0.05, 2000, rng)
    sep = SkyCoord(stars["ra"], stars["dec"]).separation(SkyCoord(150 * u.deg, 2 * u.deg))
    assert sep.max() <= 0.05 * u.deg
    # Uniform on the sky: half the stars within radius / sqrt(2).
    assert np.mean(sep < 0.05 / np.sqrt(2) * u.deg) == pytest.approx(0.5, abs=0.04)
    assert 30 <= stars["flux"].min() and stars["flux"].max() <= 3e4
    # dN/dF ~ F**-1.5: the median solves F**-0.5 = (30**-0.5 + 3e4**-0.5) / 2.
    expected_median = ((30**-0.5 + 3e4**-0.5) / 2) ** -2
    assert np.median(stars["flux"]) == pytest.approx(expected_median, rel=0.08)
    ref = sky.reference_catalog(stars, rng, missing_fraction=0.1, extra_fraction=0.05)
    real = ref["source_id"] < 10_000_000
    assert np.sum(~real) == 100
    assert np.sum(real) == pytest.approx(1800, abs=60)
    path = sky.write_reference_catalog(ref, tmp_path / "gaia.ecsv")
    back = Table.read(path)
    assert set(back.colnames) >= {"ra", "dec", "pmra", "pmdec", "ref_epoch"}
    assert back["ref_epoch"][0] == 2016.0


def test_star_pixels_place_stars_through_the_wcs(distortion):
    info = sky.make_wcsinfo(80.0, -30.0, roll=100.0)
    rng = np.random.default_rng(5)
    stars = sky.make_star_catalog(80.0, -30.0, 0.01, 50, rng)
    x, y, ra, dec = sky.star_pixels(stars, info, distortion, (256, 256), 2027.0)
    wcs = kw.build_wcs(distortion, info, (256, 256))
    back_ra, back_dec = wcs(x, y, with_bounding_box=False)
    np.testing.assert_allclose(np.mod(back_ra, 360), ra, atol=1e-10)
    np.testing.assert_allclose(back_dec, dec, atol=1e-10)
    moved = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(stars["ra"], stars["dec"]))
    expected = np.hypot(stars["pmra"], stars["pmdec"]) * 11.0  # mas over 11 years
    np.testing.assert_allclose(moved.to(u.mas).value, expected, rtol=1e-3, atol=0.01)


def test_render_stars_conserves_flux_and_centroid():
    image = sky.render_stars((40, 40), [20.3], [17.8], [1000.0], 1.5)
    assert image.sum() == pytest.approx(1000.0, rel=1e-6)
    yy, xx = np.indices(image.shape)
    assert (xx * image).sum() / image.sum() == pytest.approx(20.3, abs=1e-4)
    assert (yy * image).sum() / image.sum() == pytest.approx(17.8, abs=1e-4)


def test_dithers_move_the_field_by_the_offsets(distortion):
    info = sky.make_wcsinfo(10.0, 40.0, roll=33.0)
    infos = sky.dithered_wcsinfos(info, distortion, 3, step_pixels=(10.5, 20.25))
    assert infos[0]["ra_ref"] == pytest.approx(info["ra_ref"]) and infos[0]["roll_ref"] == pytest.approx(33.0)
    wcs0 = kw.build_wcs(distortion, infos[0], (512, 512))
    for k, moved in enumerate(infos[1:], start=1):
        wcs = kw.build_wcs(distortion, moved, (512, 512))
        ra, dec = kw.pixel_to_sky(wcs0, 250.0, 250.0)
        x, y = kw.sky_to_pixel(wcs, ra, dec)
        # A star moves by about -offset along the detector (x points to -V2): ~k * (10.5, -20.25) pixels.
        assert np.hypot(x - 250.0, y - 250.0) == pytest.approx(k * np.hypot(10.5, 20.25), rel=0.02)
