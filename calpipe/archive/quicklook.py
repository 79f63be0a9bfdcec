"""Quicklook images of products: a preview PNG and a thumbnail per rate, cal or raw exposure.

The preview shows the science array through an asinh stretch between limits taken from
the good pixels (``percentile``: the 0.5th and 99.5th percentiles; ``zscale``: IRAF's
zscale). The stretch's softening is chosen so that the sky (the sigma-clipped median)
lands at :data:`SKY_GREY` of the grey scale: noise stays visible and sources rise to white.
Pixels flagged ``DO_NOT_USE`` (and non-finite ones) are drawn in :data:`FLAGGED_COLOUR`,
a flat muted blue outside the grey scale, so they are never mistaken for data. The preview
has a colour bar and a title (root, detector, filter, exposure time); with a catalog,
each source is circled. The thumbnail is the same image at most :data:`THUMB_SIZE` pixels
on a side, without axes. A raw exposure is shown as its last minus its first resultant.
"""

from importlib.util import find_spec
from pathlib import Path

import numpy as np

from calpipe import dqflags
from calpipe.atomic import atomic_path

from .db import ArchiveError
from .schema import file_name, split_name

FLAGGED_COLOUR = "#5f87af"
SKY_GREY = 0.45
THUMB_SIZE = 300
PREVIEW_SIZE = 1024  # largest side of the preview's image area, in pixels
LIMITS = ("percentile", "zscale")
CATALOG_COLOUR = "#ff7f0e"


def quicklook(path, out_dir, *, catalog=None, limits="percentile"):
    """Write ``<root>_preview.png`` and ``<root>_thumb.png`` for a product into ``out_dir``.

    Parameters
    ----------
    path : path
        A rate or cal image (``ImageModel``) or a raw exposure (``RawModel``).
    out_dir : path
        Folder for the PNGs (created if absent).
    catalog : path, optional
        A source catalog (ECSV with ``x_centroid``/``y_centroid`` science pixels) to circle.
    limits : {"percentile", "zscale"}
        How the display limits are chosen.

    Returns
    -------
    dict
        ``{"preview": Path, "thumb": Path}``.
    """
    from calpipe import datamodels

    if find_spec("matplotlib") is None:
        raise ArchiveError("quicklook images need matplotlib: pip install 'calpipe[archive]'")
    if limits not in LIMITS:
        raise ArchiveError(f"limits {limits!r}: expected one of {', '.join(LIMITS)}")
    path = Path(path)
    parsed = split_name(path.name)
    root = parsed[0] if parsed else path.stem
    with datamodels.open(path) as model:
        image, flagged, unit, what = _science_image(model, path)
        meta = model.meta.to_dict()
    sources = _read_catalog(catalog) if catalog else None
    norm = display_norm(image[~flagged], limits)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = _title(root, meta, what)
    preview = out_dir / file_name(root, "preview")
    thumb = out_dir / file_name(root, "thumb")
    with atomic_path(preview) as tmp:
        _write_preview(tmp, image, flagged, norm, title, unit, sources)
    with atomic_path(thumb) as tmp:
        _write_thumb(tmp, image, flagged, norm)
    return {"preview": preview, "thumb": thumb}


def _science_image(model, path):
    """(float image, flagged mask, unit, description) of a model."""
    data = np.asarray(model.data)
    if type(model).__name__ == "RawModel":
        if data.ndim != 3 or data.shape[0] < 2:
            raise ArchiveError(f"{path}: a raw exposure needs at least 2 resultants for a quicklook, has {data.shape}")
        image = data[-1].astype(np.float32) - data[0].astype(np.float32)
        return image, ~np.isfinite(image), "DN", "last - first resultant"
    if type(model).__name__ != "ImageModel":
        raise ArchiveError(f"{path}: no quicklook for a {type(model).__name__}, expected a rate, cal or raw exposure")
    image = data.astype(np.float32, copy=False)
    flagged = ((np.asarray(model.dq) & dqflags.DO_NOT_USE) > 0) | ~np.isfinite(image)
    return image, flagged, "DN/s", "count rate"


def display_norm(good, limits="percentile", sky_grey=SKY_GREY):
    """An astropy ImageNormalize for the good pixel values: the limits, and an asinh
    stretch softened so that the sky (sigma-clipped median) maps to ``sky_grey``."""
    from astropy.stats import sigma_clipped_stats
    from astropy.visualization import AsinhStretch, ImageNormalize, ZScaleInterval

    good = np.asarray(good, dtype=np.float64)
    if good.size == 0:
        return ImageNormalize(vmin=0.0, vmax=1.0, stretch=AsinhStretch(0.1), clip=True)
    # A regular sample of at most a million pixels sets the limits and the sky of a large image.
    sample = good if good.size <= 1_000_000 else good[:: good.size // 1_000_000 + 1]
    if limits == "zscale":
        vmin, vmax = ZScaleInterval().get_limits(sample)
    else:
        vmin, vmax = np.percentile(sample, [0.5, 99.5])
    if not vmax > vmin:
        vmax = vmin + 1.0
    sky = sigma_clipped_stats(sample, sigma=3.0, maxiters=5)[1]
    level = float(np.clip((sky - vmin) / (vmax - vmin), 1e-6, 1.0))
    return ImageNormalize(vmin=vmin, vmax=vmax, stretch=AsinhStretch(asinh_softening(level, sky_grey)), clip=True)


def asinh_softening(x, y):
    """The softening ``a`` for which ``asinh(x/a)/asinh(1/a) = y`` (bisection in log a).

    The curve rises from the identity (large ``a``) as ``a`` shrinks, so a level already
    above ``y`` gets the nearly linear stretch."""
    def stretched(a):
        return np.arcsinh(x / a) / np.arcsinh(1.0 / a)

    lo, hi = np.log(1e-5), np.log(1e3)
    if stretched(np.exp(hi)) >= y:
        return float(np.exp(hi))
    if stretched(np.exp(lo)) <= y:
        return float(np.exp(lo))
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if stretched(np.exp(mid)) > y:
            lo = mid
        else:
            hi = mid
    return float(np.exp(0.5 * (lo + hi)))


def block_reduce(image, flagged, factor):
    """Mean of the good pixels in ``factor`` x ``factor`` blocks; a block with none is flagged."""
    if factor <= 1:
        return image, flagged
    ny, nx = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    shape = (ny // factor, factor, nx // factor, factor)
    good = ~flagged[:ny, :nx]
    values = np.where(good, image[:ny, :nx], 0.0).reshape(shape).sum(axis=(1, 3), dtype=np.float64)
    counts = good.reshape(shape).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        reduced = (values / counts).astype(np.float32)
    return reduced, counts == 0


def rgba(image, flagged, norm):
    """The image through ``norm`` and the grey map, flagged pixels in the flagged colour (uint8 RGBA)."""
    values = np.ma.masked_array(np.ma.getdata(norm(image)), mask=flagged)
    return (_grey()(values) * 255).round().astype(np.uint8)


def _grey():
    from matplotlib import colormaps

    return colormaps["gray"].with_extremes(bad=FLAGGED_COLOUR)


def _write_thumb(path, image, flagged, norm):
    from matplotlib.image import imsave

    factor = int(np.ceil(max(image.shape) / THUMB_SIZE))
    small, small_flagged = block_reduce(image, flagged, factor)
    imsave(path, rgba(small, small_flagged, norm), format="png", origin="lower")


def _write_preview(path, image, flagged, norm, title, unit, sources):
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

    factor = int(np.ceil(max(image.shape) / PREVIEW_SIZE))
    shown, shown_flagged = block_reduce(image, flagged, factor)
    ny, nx = shown.shape
    dpi, left, right, bottom, top = 100, 70, 120, 50, 50  # margins in pixels
    width, height = nx + left + right, ny + bottom + top
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes([left / width, bottom / height, nx / width, ny / height])
    # The colours are computed here (as for the thumbnail) so flagged pixels keep theirs exactly.
    ax.imshow(rgba(shown, shown_flagged, norm), origin="lower", interpolation="nearest",
              extent=(-0.5, nx * factor - 0.5, -0.5, ny * factor - 0.5))
    if sources is not None and len(sources):
        ax.scatter(sources[0], sources[1], s=60, facecolors="none", edgecolors=CATALOG_COLOUR, linewidths=0.8)
        ax.set_xlim(-0.5, nx * factor - 0.5)
        ax.set_ylim(-0.5, ny * factor - 0.5)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    ax.set_title(title, fontsize=9)
    cax = fig.add_axes([(left + nx + 15) / width, bottom / height, 15 / width, ny / height])
    fig.colorbar(ScalarMappable(norm=norm, cmap=_grey()), cax=cax, label=unit)
    fig.savefig(path, dpi=dpi, format="png")


def _read_catalog(path):
    from astropy.table import Table

    try:
        table = Table.read(path, format="ascii.ecsv")
        return np.asarray(table["x_centroid"], float), np.asarray(table["y_centroid"], float)
    except (OSError, ValueError, KeyError) as err:
        raise ArchiveError(f"{path}: not a source catalog with x_centroid and y_centroid ({err})") from None


def _title(root, meta, what):
    instrument = meta.get("instrument", {})
    exposure = meta.get("exposure", {})
    parts = [root, instrument.get("detector", "?"), instrument.get("optical_element", "?")]
    if exposure.get("exposure_time") is not None:
        parts.append(f"{float(exposure['exposure_time']):.1f} s")
    return "  ".join(str(p) for p in parts) + f"\n{what}"
