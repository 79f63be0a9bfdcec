"""The yardsticks the sky tests use: separations and WCS agreement on known offsets."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from calpipe.kernels import wcs as kw
from calpipe.simulate import sky
from calpipe.truth import _separation_mas, wcs_agreement


def test_separation_matches_astropy():
    rng = np.random.default_rng(0)
    ra0, dec0 = rng.uniform(0, 360, 50), rng.uniform(-89, 89, 50)
    ra1, dec1 = ra0 + rng.normal(0, 1e-4, 50), dec0 + rng.normal(0, 1e-4, 50)
    expected = SkyCoord(ra0 * u.deg, dec0 * u.deg).separation(SkyCoord(ra1 * u.deg, dec1 * u.deg)).to(u.mas).value
    np.testing.assert_allclose(_separation_mas(ra0, dec0, ra1, dec1), expected, rtol=1e-6)


class _Image:
    def __init__(self, wcs):
        self.meta = type("Meta", (), {"wcs": wcs})()


def test_wcs_agreement_measures_a_known_shift(distortion):
    base = sky.make_wcsinfo(53.1, -27.8, roll=20.0)
    moved = dict(base, dec_ref=base["dec_ref"] + 0.055 / 3600)  # half a 0.11" pixel
    shape = (256, 256)
    a, b = kw.build_wcs(distortion, base, shape), kw.build_wcs(distortion, moved, shape)
    x, y = np.random.default_rng(1).uniform(0, 255, (2, 40))
    sources = {"x": x, "y": y, "source_id": np.arange(40)}
    rms, n = wcs_agreement(_Image(a), sources, _Image(b), sources)
    assert n == 40 and rms == pytest.approx(0.5, rel=1e-3)
    rms, _ = wcs_agreement(_Image(a), sources, _Image(a), sources)
    assert rms == pytest.approx(0.0, abs=1e-9)
