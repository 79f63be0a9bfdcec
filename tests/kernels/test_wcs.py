import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from calpipe import datamodels as dm
from calpipe.kernels import wcs as kw
from calpipe.references import RefStore
from calpipe.simulate import sky

INFO = sky.make_wcsinfo(53.1, -27.8, roll=20.0, va_scale=1.00007)


def test_pixel_sky_pixel_round_trip_below_1e6_pixel(distortion):
    wcs = kw.build_wcs(distortion, INFO, (4088, 4088))
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-0.5, 4087.5, 2000), rng.uniform(-0.5, 4087.5, 2000)
    ra, dec = kw.pixel_to_sky(wcs, x, y)
    xx, yy = kw.sky_to_pixel(wcs, ra, dec)
    assert np.max(np.hypot(xx - x, yy - y)) < 1e-6


def test_reference_point_roll_scale_and_parity(distortion):
    wcs = kw.build_wcs(distortion, INFO, (4088, 4088))
    to_sky = wcs.get_transform("v2v3vacorr", "world")
    ra, dec = to_sky(INFO["v2_ref"], INFO["v3_ref"])
    assert SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(53.1 * u.deg, -27.8 * u.deg)).to(u.uas) < 1 * u.uas
    # roll_ref is the position angle of +V3 at the reference point.
    up = to_sky(INFO["v2_ref"], INFO["v3_ref"] + 1.0)
    pa = SkyCoord(ra * u.deg, dec * u.deg).position_angle(SkyCoord(up[0] * u.deg, up[1] * u.deg))
    assert abs(pa.deg - 20.0) < 1e-6
    # 0.11 arcsec pixels at the detector centre, scaled by velocity aberration.
    assert kw.pixel_scale(wcs, 2043.5, 2043.5) == pytest.approx(0.11 * 1.00007, rel=2e-3)
    # Sky parity: with north up, east is to the left (negative determinant).
    ra0, dec0 = wcs(2000.0, 2000.0)
    ra1, dec1 = wcs(2001.0, 2000.0)
    ra2, dec2 = wcs(2000.0, 2001.0)
    c = np.cos(np.radians(dec0))
    assert np.linalg.det([[(ra1 - ra0) * c, (ra2 - ra0) * c], [dec1 - dec0, dec2 - dec0]]) < 0


def test_science_pixel_zero_is_detector_pixel_four(distortion):
    wcs = kw.build_wcs(distortion, INFO, (100, 100))
    v2, v3 = wcs.get_transform("detector", "v2v3")(0.0, 0.0)
    assert (v2, v3) == pytest.approx(distortion(4.0, 4.0), abs=1e-9)


def test_velocity_aberration_scales_about_reference_point(distortion):
    plain = kw.build_wcs(distortion, dict(INFO, va_scale=1.0), (4088, 4088))
    scaled = kw.build_wcs(distortion, dict(INFO, va_scale=1.001), (4088, 4088))
    ratio = kw.pixel_scale(scaled, 100.0, 100.0) / kw.pixel_scale(plain, 100.0, 100.0)
    assert ratio == pytest.approx(1.001, abs=1e-6)


def test_s_region_and_bounding_box(distortion):
    wcs = kw.build_wcs(distortion, INFO, (64, 128))
    region = kw.s_region(wcs)
    values = np.array(region.split()[2:], float).reshape(4, 2)
    assert region.startswith("POLYGON ICRS ")
    corners = kw.pixel_to_sky(wcs, np.array([-0.49, 127.49, 127.49, -0.49]), np.array([-0.49, -0.49, 63.49, 63.49]))
    np.testing.assert_allclose(values, np.column_stack(corners), atol=1e-5)
    ra, dec = kw.pixel_to_sky(wcs, [200.0], [10.0])  # outside the 128-pixel-wide array
    assert np.isnan(ra[0]) and np.isnan(dec[0])


def test_distortion_inverse_and_nonlinear_size(distortion):
    grid = np.linspace(-200, 4300, 91)
    x, y = np.meshgrid(grid, grid)
    v2, v3 = distortion(x, y)
    xi, yi = distortion.inverse(v2, v3)
    assert np.max(np.hypot(xi - x, yi - y)) < 1e-6
    linear = sky.distortion_model(nonlinear=0.0)
    l2, l3 = linear(x, y)
    # A real distortion: several pixels at the corners, none at the centre.
    assert 3 < np.max(np.hypot(v2 - l2, v3 - l3)) / 0.11 < 30
    c2, c3 = distortion(2047.5, 2047.5)
    assert (c2, c3) == pytest.approx(sky.DEFAULT_V2V3, abs=1e-9)


def test_distortion_reference_saves_and_is_selected_from_store(tmp_path, distortion):
    path = dm.DistortionRefModel(sky.distortion_reference_tree()).save(tmp_path / "wfi01_distortion.asdf")
    store = RefStore(tmp_path / "refs")
    store.add([path])
    meta = {"instrument": {"name": "WFI", "detector": "WFI01", "optical_element": "F158"},
            "exposure": {"start_time": "2027-06-01T00:00:00"}}
    best = store.best("distortion", meta, "before")
    with dm.open(best) as ref:
        assert isinstance(ref, dm.DistortionRefModel)
        model = ref.coordinate_distortion_transform
        assert model(1000.0, 3000.0) == pytest.approx(distortion(1000.0, 3000.0), abs=1e-9)
        assert model.inverse(*model(1000.0, 3000.0)) == pytest.approx((1000.0, 3000.0), abs=1e-6)


def test_distortion_reference_without_inverse_is_refused(tmp_path):
    from astropy.modeling import models

    tree = sky.distortion_reference_tree()
    tree["coordinate_distortion_transform"] = models.Mapping((0, 1, 0, 1)) | (models.Polynomial2D(2) & models.Polynomial2D(2))
    with pytest.raises(dm.DataModelError, match="no inverse"):
        dm.DistortionRefModel(tree).save(tmp_path / "bad.asdf")
