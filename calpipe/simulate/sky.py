"""The sky side of the simulator: distortion, pointing, star fields, reference catalogs, dithers.

Every function is pure: it takes numbers, tables and a ``numpy.random.Generator`` and returns
new values; nothing is read or written except by :func:`write_reference_catalog`.

Conventions (see :mod:`calpipe.kernels.wcs`): detector pixels are 0-based on the full
detector, reference border included; science pixels are detector pixels minus 4.
V2/V3 are in arcsec, RA/Dec in degrees, proper motions in mas/yr (``pmra`` includes the
cos(Dec) factor, as Gaia's does), epochs are Julian years (Gaia DR3: 2016.0), star fluxes are
total count rates in DN/s of the calibrated image.
"""

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.modeling import fitting, models
from astropy.table import Table
from astropy.time import Time

from calpipe.detector import BORDER, GAIA_EPOCH, PIXEL_SCALE
from calpipe.kernels import wcs as wcs_kernel
from calpipe.kernels.alignment import propagate  # noqa: F401 - part of this module's API

DETECTOR_SIZE = 4096

# Where a WFI-like detector sits in the V2/V3 plane (arcsec); used as its reference point.
DETECTOR_V2V3 = {"WFI01": (-1312.9, -1040.8)}
DEFAULT_V2V3 = (-1312.9, -1040.8)

# Non-linear part of the distortion, in units of the pixel scale over the half-width:
# at a detector corner it moves a pixel by a few pixels, like a real wide-field camera.
_DISTORTION_TERMS = {
    "v2": {"c2_0": 1.6e-3, "c1_1": -0.9e-3, "c0_2": 0.7e-3, "c3_0": 0.8e-3, "c1_2": 0.5e-3},
    "v3": {"c2_0": -0.6e-3, "c1_1": 1.2e-3, "c0_2": 1.4e-3, "c0_3": 0.7e-3, "c2_1": -0.4e-3},
}


# -- distortion ----------------------------------------------------------------------------
def distortion_model(
    v2v3_center=DEFAULT_V2V3,
    pixel_scale=PIXEL_SCALE,
    rotation_deg=-0.42,
    size=DETECTOR_SIZE,
    nonlinear=1.0,
    inverse_degree=7,
):
    """Cubic polynomial model: full-detector pixels (x, y) -> (V2, V3) arcsec, with an inverse.

    The detector centre ((size - 1) / 2, (size - 1) / 2) maps to ``v2v3_center``. The linear
    part has ``pixel_scale`` arcsec per pixel, a small rotation and a mirror in V2 (x
    increases towards -V2, so an image with north up has east to the left, as on the sky).
    ``nonlinear`` scales the quadratic and cubic terms (0: a pure linear model).
    The inverse is a polynomial of ``inverse_degree`` fitted to the forward model; it is
    accurate to well below 1e-6 pixel over the detector and a margin around it.
    """
    center = (size - 1) / 2.0
    half = size / 2.0
    scale = pixel_scale * half  # arcsec per unit of normalized coordinate
    theta = np.radians(rotation_deg)
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    v2c, v3c = v2v3_center
    # V2 = v2c - scale (cos u - sin v) ...; V3 = v3c + scale (sin u + cos v) ...
    v2_coeffs = {"c0_0": v2c, "c1_0": -scale * cos_t, "c0_1": scale * sin_t}
    v3_coeffs = {"c0_0": v3c, "c1_0": scale * sin_t, "c0_1": scale * cos_t}
    for name, value in _DISTORTION_TERMS["v2"].items():
        v2_coeffs[name] = v2_coeffs.get(name, 0.0) + nonlinear * scale * value
    for name, value in _DISTORTION_TERMS["v3"].items():
        v3_coeffs[name] = v3_coeffs.get(name, 0.0) + nonlinear * scale * value

    normalize = (models.Shift(-center) | models.Scale(1 / half)) & (
        models.Shift(-center) | models.Scale(1 / half)
    )
    poly = models.Polynomial2D(3, name="v2_poly", **v2_coeffs) & models.Polynomial2D(
        3, name="v3_poly", **v3_coeffs
    )
    forward = (normalize | models.Mapping((0, 1, 0, 1)) | poly).rename("detector_to_v2v3")
    forward.inverse = _fit_inverse(forward, center, half, v2c, v3c, scale, inverse_degree)
    return forward


def _fit_inverse(forward, center, half, v2c, v3c, scale, degree):
    # Fit in normalized coordinates on a dense grid covering the detector and a 10% margin,
    # so stars just off the edge still invert correctly.
    grid = np.linspace(-1.1, 1.1, 121)
    un, vn = np.meshgrid(grid, grid)
    v2, v3 = forward(center + half * un, center + half * vn)
    p = (v2 - v2c) / scale
    q = (v3 - v3c) / scale
    fitter = fitting.LinearLSQFitter()
    fit_u = fitter(models.Polynomial2D(degree), p, q, un)
    fit_v = fitter(models.Polynomial2D(degree), p, q, vn)
    to_norm = (models.Shift(-v2c) | models.Scale(1 / scale)) & (
        models.Shift(-v3c) | models.Scale(1 / scale)
    )
    from_norm = (models.Scale(half) | models.Shift(center)) & (
        models.Scale(half) | models.Shift(center)
    )
    inverse = to_norm | models.Mapping((0, 1, 0, 1)) | (fit_u & fit_v) | from_norm
    return inverse.rename("v2v3_to_detector")


def distortion_reference_tree(
    detector="WFI01",
    optical_element="ANY",
    useafter="2020-01-01T00:00:00",
    transform=None,
    **model_options,
):
    """The tree of a ``distortion`` reference file (``DistortionRefModel``) for ``detector``.

    The model is ``transform`` when given, else :func:`distortion_model` with
    ``model_options`` (the detector's V2/V3 centre from ``DETECTOR_V2V3`` unless given).
    """
    model_options.setdefault("v2v3_center", DETECTOR_V2V3.get(detector.upper(), DEFAULT_V2V3))
    meta = {
        "model_type": "DistortionRefModel",
        "reftype": "distortion",
        "instrument": {"name": "WFI", "detector": detector.upper(), "optical_element": optical_element},
        "useafter": useafter,
        "description": "Polynomial distortion: detector pixels -> V2/V3 arcsec (simulated)",
        "author": "calpipe simulate",
        "pedigree": "SIMULATION",
        "input_units": "pixel",
        "output_units": "arcsec",
    }
    if transform is None:
        transform = distortion_model(**model_options)
    return {"meta": meta, "coordinate_distortion_transform": transform}


# -- pointing ------------------------------------------------------------------------------
def make_wcsinfo(ra, dec, roll=0.0, detector="WFI01", va_scale=1.0, v2v3_ref=None):
    """``meta.wcsinfo`` for an exposure whose detector reference point looks at (ra, dec).

    The reference point is the detector centre's V2/V3 position unless ``v2v3_ref`` is given.
    """
    v2_ref, v3_ref = v2v3_ref if v2v3_ref is not None else DETECTOR_V2V3.get(detector.upper(), DEFAULT_V2V3)
    return {
        "ra_ref": float(ra) % 360.0,
        "dec_ref": float(dec),
        "v2_ref": float(v2_ref),
        "v3_ref": float(v3_ref),
        "roll_ref": float(roll),
        "va_scale": float(va_scale),
    }


def velocity_aberration_scale(speed_km_s=30.0, angle_deg=90.0):
    """First-order velocity-aberration plate scale 1 + (v/c) cos(angle) for a telescope moving
    at ``speed_km_s`` at ``angle_deg`` from the pointing (about 1 +/- 1e-4 at L2)."""
    return 1.0 + speed_km_s / 299792.458 * np.cos(np.radians(angle_deg))


def inject_pointing_error(wcsinfo, rng, shift_arcsec=0.5, roll_deg=0.05):
    """Perturb a pointing as a guiding error would.

    Moves (ra_ref, dec_ref) by ``shift_arcsec`` in a random direction and adds +/- ``roll_deg``
    (random sign) to the roll. Returns ``(true, perturbed, error)``: the true wcsinfo
    (unchanged copy), the one to write into the raw exposure, and
    ``{"dra_arcsec", "ddec_arcsec", "droll_deg"}`` (perturbed minus true; dra includes cos Dec).
    """
    true = dict(wcsinfo)
    angle = rng.uniform(0, 2 * np.pi)
    dra = shift_arcsec * np.cos(angle)
    ddec = shift_arcsec * np.sin(angle)
    droll = roll_deg * rng.choice([-1.0, 1.0])
    center = SkyCoord(true["ra_ref"] * u.deg, true["dec_ref"] * u.deg)
    moved = center.spherical_offsets_by(dra * u.arcsec, ddec * u.arcsec)
    perturbed = dict(true)
    perturbed["ra_ref"] = float(moved.ra.deg)
    perturbed["dec_ref"] = float(moved.dec.deg)
    perturbed["roll_ref"] = float(true["roll_ref"] + droll)
    error = {"dra_arcsec": float(dra), "ddec_arcsec": float(ddec), "droll_deg": float(droll)}
    return true, perturbed, error


# -- stars -----------------------------------------------------------------------------------
def epoch_of(start_time):
    """Julian-year epoch of an ISO UTC time string (``meta.exposure.start_time``)."""
    return float(Time(start_time, scale="utc").jyear)


def make_star_catalog(
    ra,
    dec,
    radius_deg,
    nstars,
    rng,
    flux_range=(30.0, 3.0e4),
    flux_slope=-1.5,
    pm_sigma=6.0,
    epoch=GAIA_EPOCH,
):
    """A field of ``nstars`` stars uniformly spread on the sky within ``radius_deg`` of (ra, dec).

    Fluxes (DN/s) follow a power law ``dN/dF ~ F**flux_slope`` over ``flux_range`` (many faint
    stars, few bright ones); proper motions are Gaussian with ``pm_sigma`` mas/yr per axis.
    Columns: source_id, ra, dec (deg, at ``epoch``), pmra, pmdec (mas/yr), epoch, flux.
    """
    # Uniform on the spherical cap: cos(separation) uniform in [cos r, 1].
    cos_r = np.cos(np.radians(radius_deg))
    sep = np.degrees(np.arccos(rng.uniform(cos_r, 1.0, nstars)))
    pa = rng.uniform(0, 360.0, nstars)
    center = SkyCoord(ra * u.deg, dec * u.deg)
    coords = center.directional_offset_by(pa * u.deg, sep * u.deg)
    lo, hi = flux_range
    a = flux_slope + 1.0
    flux = (lo**a + rng.uniform(0, 1, nstars) * (hi**a - lo**a)) ** (1.0 / a)
    table = Table()
    table["source_id"] = np.arange(1, nstars + 1, dtype=np.int64)
    table["ra"] = coords.ra.deg
    table["dec"] = coords.dec.deg
    table["pmra"] = rng.normal(0, pm_sigma, nstars)
    table["pmdec"] = rng.normal(0, pm_sigma, nstars)
    table["epoch"] = np.full(nstars, float(epoch))
    table["flux"] = flux
    table["ra"].unit = table["dec"].unit = u.deg
    table["pmra"].unit = table["pmdec"].unit = u.mas / u.yr
    table["epoch"].unit = u.yr
    table["flux"].unit = u.DN / u.s
    return table


def field_catalog(ra, dec, size, rng, nexposures=1, star_density=1 / 4000.0,
                  flux_range=(2.0, 3.0e5), flux_slope=-1.8, bright=2.0e4, epoch=GAIA_EPOCH):
    """The stars of a simulated field: enough sky around (ra, dec) for a ``size`` detector.

    The cap covers the detector's corners and ``nexposures`` dithers of
    :func:`dither_offsets`, at ``star_density`` stars per pixel. Fluxes follow
    ``N(>F) ~ F**(flux_slope + 1)``; the star nearest the centre gets at least ``bright``
    DN/s, so every exposure has a star that saturates.
    """
    radius_pix = 0.75 * size + 60.0 * max(nexposures - 1, 0)
    nstars = max(4, int(round(np.pi * radius_pix**2 * star_density)))
    stars = make_star_catalog(ra, dec, radius_pix * PIXEL_SCALE / 3600.0, nstars, rng,
                              flux_range=flux_range, flux_slope=flux_slope, epoch=epoch)
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    nearest = int(np.argmin(centre.separation(SkyCoord(stars["ra"], stars["dec"])).deg))
    stars["flux"][nearest] = max(float(stars["flux"][nearest]), bright)
    return stars


def reference_catalog(
    stars,
    rng,
    missing_fraction=0.05,
    extra_fraction=0.05,
    position_error_mas=0.2,
    pm_error_mas_yr=0.05,
    faint_limit=None,
):
    """A Gaia-like catalog of ``stars`` (from :func:`make_star_catalog`).

    Positions stay at the stars' epoch (the ``ref_epoch`` column), with small Gaussian
    measurement errors; a random ``missing_fraction`` of stars is dropped (and every star
    fainter than ``faint_limit`` DN/s when given); ``extra_fraction`` (of the field) extra
    sources that are not in the image are added. Columns: source_id, ra, dec, pmra, pmdec,
    ref_epoch, phot_g_mean_mag (a magnitude from the flux, for readers that expect it).
    """
    keep = rng.uniform(0, 1, len(stars)) >= missing_fraction
    if faint_limit is not None:
        keep &= np.asarray(stars["flux"]) >= faint_limit
    kept = stars[keep]
    n = len(kept)
    dec = np.asarray(kept["dec"]) + rng.normal(0, position_error_mas, n) / 3.6e6
    ra = np.asarray(kept["ra"]) + rng.normal(0, position_error_mas, n) / 3.6e6 / np.cos(np.radians(dec))
    pmra = np.asarray(kept["pmra"]) + rng.normal(0, pm_error_mas_yr, n)
    pmdec = np.asarray(kept["pmdec"]) + rng.normal(0, pm_error_mas_yr, n)
    ids = np.asarray(kept["source_id"])
    flux = np.asarray(kept["flux"])
    epoch = np.asarray(kept["epoch"], float)

    nextra = int(round(extra_fraction * len(stars)))
    if nextra and len(stars):
        # Extra sources: spread over the same area, e.g. variables that were faint in the image.
        lo, hi = np.min(stars["ra"]), np.max(stars["ra"])
        ra_x = rng.uniform(lo, hi, nextra)
        dec_x = rng.uniform(np.min(stars["dec"]), np.max(stars["dec"]), nextra)
        ra = np.concatenate([ra, ra_x])
        dec = np.concatenate([dec, dec_x])
        pmra = np.concatenate([pmra, rng.normal(0, 3, nextra)])
        pmdec = np.concatenate([pmdec, rng.normal(0, 3, nextra)])
        ids = np.concatenate([ids, 10_000_000 + np.arange(nextra)])
        flux = np.concatenate([flux, np.full(nextra, np.median(stars["flux"]))])
        epoch = np.concatenate([epoch, np.full(nextra, epoch[0] if n else GAIA_EPOCH)])

    table = Table()
    table["source_id"] = ids.astype(np.int64)
    table["ra"] = ra % 360.0
    table["dec"] = dec
    table["pmra"] = pmra
    table["pmdec"] = pmdec
    table["ref_epoch"] = epoch
    table["phot_g_mean_mag"] = 25.0 - 2.5 * np.log10(flux)
    table["ra"].unit = table["dec"].unit = u.deg
    table["pmra"].unit = table["pmdec"].unit = u.mas / u.yr
    table["ref_epoch"].unit = u.yr
    table.meta["description"] = "Gaia-like reference catalog (simulated)"
    return table


def write_reference_catalog(table, path):
    """Write a reference catalog as ECSV (the format tweakreg's ``abs_refcat`` reads first)."""
    table.write(path, format="ascii.ecsv", overwrite=True)
    return path


def star_pixels(stars, wcsinfo, distortion, shape, epoch, border=BORDER):
    """Science-pixel x, y (0-based) of ``stars`` at ``epoch`` for a pointing and distortion.

    ``stars`` has ra, dec, pmra, pmdec and epoch columns; ``shape`` is the science array's
    (ny, nx). Returns ``(x, y, ra, dec)``: the pixel positions to render at and the sky
    positions the stars really have at ``epoch`` (what a truth ``sources`` table records).
    """
    ra, dec = propagate(
        stars["ra"], stars["dec"], stars["pmra"], stars["pmdec"], float(stars["epoch"][0]), epoch
    ) if len(stars) else (np.zeros(0), np.zeros(0))
    wcs = wcs_kernel.build_wcs(distortion, wcsinfo, shape, border=border)
    x, y = wcs_kernel.sky_to_pixel(wcs, ra, dec)
    return np.asarray(x), np.asarray(y), np.asarray(ra), np.asarray(dec)


def render_stars(shape, x, y, flux, sigma):
    """Image (DN/s) of Gaussian stars integrated over pixels, with a total of ``flux`` each.

    Stars are drawn in a box of +/- 6 sigma; a star partly off the image keeps only the light
    that falls on it. Used by tests and the simulator alike.
    """
    from scipy.special import erf

    ny, nx = shape
    image = np.zeros(shape, dtype=np.float64)
    half = int(np.ceil(6 * sigma)) + 1
    root2s = np.sqrt(2.0) * sigma
    for xs, ys, f in zip(np.asarray(x, float), np.asarray(y, float), np.asarray(flux, float)):
        x0, x1 = max(int(np.floor(xs)) - half, 0), min(int(np.floor(xs)) + half + 1, nx)
        y0, y1 = max(int(np.floor(ys)) - half, 0), min(int(np.floor(ys)) + half + 1, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        ex = np.arange(x0, x1 + 1) - 0.5 - xs
        ey = np.arange(y0, y1 + 1) - 0.5 - ys
        px = 0.5 * np.diff(erf(ex / root2s))
        py = 0.5 * np.diff(erf(ey / root2s))
        image[y0:y1, x0:x1] += f * np.outer(py, px)
    return image


# -- dithers ---------------------------------------------------------------------------------
def dither_offsets(nexposures, step_pixels=(42.5, 31.25), pixel_scale=PIXEL_SCALE):
    """V2/V3 offsets (arcsec) of a dithered set: exposure k moves by k * step, a sub-pixel line.

    The half-pixel and quarter-pixel fractions sample the PSF at different phases; the first
    exposure is not moved.
    """
    k = np.arange(nexposures, dtype=float)
    return np.column_stack([k * step_pixels[0] * pixel_scale, k * step_pixels[1] * pixel_scale])


def offset_wcsinfo(wcsinfo, distortion, dv2, dv3, shape=(16, 16)):
    """The wcsinfo after a small telescope move that puts the reference point on the sky that
    V2/V3 (v2_ref + dv2, v3_ref + dv3) saw before: the sky moves by about (-dv2, -dv3) on the
    detector. The new roll is the position angle of the +V3 direction at that point under the
    old attitude, so the field keeps its orientation."""
    wcs = wcs_kernel.build_wcs(distortion, wcsinfo, shape)
    to_sky = wcs.get_transform("v2v3vacorr", "world")
    v2 = wcsinfo["v2_ref"] + dv2
    v3 = wcsinfo["v3_ref"] + dv3
    ra, dec = to_sky(v2, v3)
    ra_up, dec_up = to_sky(v2, v3 + 1.0)
    here = SkyCoord(float(ra) * u.deg, float(dec) * u.deg)
    roll = here.position_angle(SkyCoord(float(ra_up) * u.deg, float(dec_up) * u.deg)).deg
    moved = dict(wcsinfo)
    moved["ra_ref"] = float(ra) % 360.0
    moved["dec_ref"] = float(dec)
    # Keep the roll on the same branch as the input (e.g. -0.5 rather than 359.5).
    moved["roll_ref"] = float(wcsinfo["roll_ref"] + ((roll - wcsinfo["roll_ref"] + 180.0) % 360.0 - 180.0))
    return moved


def dithered_wcsinfos(wcsinfo, distortion, nexposures, **pattern):
    """wcsinfo of each of ``nexposures`` dithered exposures (the first is ``wcsinfo`` itself)."""
    return [offset_wcsinfo(wcsinfo, distortion, dv2, dv3) for dv2, dv3 in dither_offsets(nexposures, **pattern)]
