"""Detector geometry and the physical constants several layers share.

Part of calpipe's bottom layer: it imports nothing from the rest of calpipe, so Numba
kernels, data models and steps can all use it.
"""

BORDER = 4
"""Reference pixels on every side of a detector (4096 -> 4088 science pixels)."""

PIXEL_SCALE = 0.11
"""Arcseconds per pixel of the WFI-like detector the simulator and photometry assume."""

PIXEL_AREA_SR = (PIXEL_SCALE / 206264.806) ** 2
"""Solid angle of one such pixel, steradians."""

GAIA_EPOCH = 2016.0
"""Julian-year epoch of Gaia DR3 positions: the default epoch of reference catalogs."""


def science(array):
    """The science pixels of a full-detector array (its last two axes), as a view."""
    return array[..., BORDER:-BORDER, BORDER:-BORDER]
