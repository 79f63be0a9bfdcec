"""World coordinates of a WFI-like image: a gwcs pipeline from science pixels to ICRS.

Pixel convention
----------------
The gwcs input frame (``detector``) is the *science array* of an ImageModel: 0-based pixel
indices, pixel centres at integer values, x along columns, y along rows. The science array
is the detector minus its 4-pixel reference border, so science pixel (0, 0) is detector
pixel (4, 4). The distortion reference is defined on *full-detector* pixels; the pipeline
adds the border offset before applying it.

Frames
------
``detector`` (science pixels) -> ``v2v3`` (telescope V2/V3, arcsec, via the distortion
reference) -> ``v2v3vacorr`` (V2/V3 scaled about (v2_ref, v3_ref) by the velocity-aberration
factor ``va_scale``) -> ``world`` (ICRS RA/Dec, degrees, through the attitude rotation built
from ra_ref, dec_ref, v2_ref, v3_ref, roll_ref). These frame names are what the alignment
(tweakwcs' V2/V3 tangent-plane corrector) looks for.

``meta.wcsinfo`` keys: ``ra_ref``, ``dec_ref`` (deg), ``v2_ref``, ``v3_ref`` (arcsec),
``roll_ref`` (deg: position angle of the V3 axis at the reference point, east of north) and
``va_scale`` (dimensionless, 1 when unknown).
"""

import numpy as np
from astropy import coordinates
from astropy import units as u
from astropy.modeling import models
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs

from calpipe.detector import BORDER

WCSINFO_KEYS = ("ra_ref", "dec_ref", "v2_ref", "v3_ref", "roll_ref")


def detector_offset(border=BORDER):
    """Model taking science pixels (x, y) to full-detector pixels."""
    return models.Shift(border, name="science_to_detector_x") & models.Shift(
        border, name="science_to_detector_y"
    )


def va_correction(v2_ref, v3_ref, va_scale):
    """Velocity-aberration scaling of V2/V3 about the reference point (arcsec in, arcsec out)."""

    def one(ref, name):
        return (models.Shift(-ref) | models.Scale(va_scale) | models.Shift(ref)).rename(name)

    return one(v2_ref, "va_v2") & one(v3_ref, "va_v3")


def v23_to_sky(ra_ref, dec_ref, v2_ref, v3_ref, roll_ref):
    """Attitude rotation: V2/V3 (arcsec) -> RA/Dec (deg).

    Rotate (v2_ref, v3_ref) to the V1 axis, roll about it, then tilt and turn V1 onto
    (ra_ref, dec_ref). The reference point therefore lands exactly on (ra_ref, dec_ref) and
    the +V3 direction there has position angle ``roll_ref`` (east of north).
    """
    angles = [v2_ref / 3600.0, -v3_ref / 3600.0, roll_ref, dec_ref, -ra_ref]
    rotation = models.SphericalRotationSequence(angles, axes_order="zyxyz", name="v23tosky")
    to_deg = models.Scale(1 / 3600.0) & models.Scale(1 / 3600.0)
    return (to_deg | rotation).rename("v23tosky")


def _wcsinfo_value(wcsinfo, key, default=None):
    value = wcsinfo.get(key, default) if hasattr(wcsinfo, "get") else getattr(wcsinfo, key, default)
    if value is None:
        raise ValueError(f"meta.wcsinfo.{key} is missing")
    return float(value)


def build_wcs(distortion, wcsinfo, shape, border=BORDER):
    """The gwcs of a science array of ``shape`` (ny, nx).

    ``distortion``: astropy model, full-detector pixels (x, y) -> (V2, V3) arcsec, with an
    inverse. ``wcsinfo``: mapping with the keys listed in the module docstring.
    """
    ra_ref, dec_ref, v2_ref, v3_ref, roll_ref = (_wcsinfo_value(wcsinfo, k) for k in WCSINFO_KEYS)
    va_scale = _wcsinfo_value(wcsinfo, "va_scale", 1.0)

    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    v2v3 = cf.Frame2D(
        name="v2v3", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec)
    )
    v2v3vacorr = cf.Frame2D(
        name="v2v3vacorr", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec)
    )
    world = cf.CelestialFrame(reference_frame=coordinates.ICRS(), name="world", unit=(u.deg, u.deg))

    to_v2v3 = (detector_offset(border) | distortion).rename("distortion")
    pipeline = [
        (detector, to_v2v3),
        (v2v3, va_correction(v2_ref, v3_ref, va_scale)),
        (v2v3vacorr, v23_to_sky(ra_ref, dec_ref, v2_ref, v3_ref, roll_ref)),
        (world, None),
    ]
    wcs = gwcs_wcs.WCS(pipeline)
    ny, nx = shape
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    wcs.array_shape = (ny, nx)
    return wcs


def footprint(wcs, shape=None):
    """RA/Dec (deg) of the four outer corners of the science array, (4, 2)."""
    if shape is None:
        shape = wcs.array_shape
    ny, nx = shape
    x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    ra, dec = wcs(x, y, with_bounding_box=False)
    return np.column_stack([np.mod(ra, 360.0), dec])


def s_region(wcs, shape=None):
    """The IVOA ``s_region`` string of the footprint: ``POLYGON ICRS ra1 dec1 ... ra4 dec4``."""
    corners = footprint(wcs, shape)
    return "POLYGON ICRS " + " ".join(f"{ra:.8f} {dec:.8f}" for ra, dec in corners)


def pixel_to_sky(wcs, x, y):
    """RA in [0, 360) and Dec, degrees, of science pixels (NaN outside the bounding box)."""
    ra, dec = wcs(np.asarray(x, float), np.asarray(y, float))
    return np.mod(ra, 360.0), dec


def sky_to_pixel(wcs, ra, dec, with_bounding_box=False):
    """Science-pixel x, y of sky positions (deg)."""
    ra = np.asarray(ra, float)
    dec = np.asarray(dec, float)
    # The rotation returns longitudes in (-180, 180]; bring RA to the same branch.
    ra = np.where(ra > 180.0, ra - 360.0, ra)
    return wcs.invert(ra, dec, with_bounding_box=with_bounding_box)


def pixel_scale(wcs, x, y):
    """Local pixel scale (arcsec per pixel, geometric mean of the two axes) at (x, y)."""
    d = 0.5
    ra0, dec0 = wcs(x - d, y, with_bounding_box=False)
    ra1, dec1 = wcs(x + d, y, with_bounding_box=False)
    ra2, dec2 = wcs(x, y - d, with_bounding_box=False)
    ra3, dec3 = wcs(x, y + d, with_bounding_box=False)
    c = np.cos(np.radians(dec0))
    jx = np.hypot((ra1 - ra0) * c, dec1 - dec0)
    jy = np.hypot((ra3 - ra2) * c, dec3 - dec2)
    return float(np.sqrt(jx * jy) * 3600.0)
