"""Source detection and measurement on a count-rate image.

The image is background-subtracted with a sigma-clipped 2-D mesh, convolved with a Gaussian
kernel for detection, segmented above ``snr_threshold`` times the background rms with a
minimum area (optionally deblended), and each segment is measured: centroids (plain and
windowed), sky position (from the windowed centroid through a gwcs), segment, circular
aperture and Kron fluxes with errors from the error array, shape, and flags. The definitions
are photutils' (``Background2D``, ``SourceCatalog``); the loops over pixels and sources run
compiled: the background mesh in Numba, segmentation and measurement in sep (the C library
of Source Extractor).

Units: positions in science pixels (0-based, pixel centres at integers), fluxes in the
image's units (DN/s). When the photometric conversion is known (``conversion_megajanskys``
in MJy/sr per DN/s and ``pixelarea_steradians``), every flux also gets a ``<name>_njy``
column (nJy) and an AB magnitude ``<name>_abmag`` with its error; a flux in DN/s times
conversion times pixel area is in MJy, times 1e15 in nJy.

``flags`` bits: 1 EDGE (segment touches the image edge or its Kron aperture leaves the
image), 2 MASKED (segment holds masked pixels or touches one), 4 SATURATED (the same for
saturated pixels), 8 BLENDED (split from a larger segment by deblending), 16 BAD_KRON
(no Kron flux).
"""

import warnings

import numpy as np
from astropy.table import Table
from numba import njit
from scipy import ndimage

FLAG_EDGE = 1
FLAG_MASKED = 2
FLAG_SATURATED = 4
FLAG_BLENDED = 8
FLAG_BAD_KRON = 16

AB_ZEROPOINT_NJY = 2.5 * np.log10(3631e9)  # AB magnitude of 1 nJy is 31.4
MJY_TO_NJY = 1e15
KRON_MEASUREMENT_RADIUS = 6.0  # the Kron radius is measured within 6 second-moment radii
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def background(data, mask, box_size=64, filter_size=3, nsigma=3.0, maxiters=10, exclude_fraction=0.5):
    """Mesh background and its rms, each the image's shape (float32); photutils' method.

    The image is cut into ``box_size`` boxes (the last ones padded as masked). In each box the
    unmasked values are sigma-clipped about their median (``nsigma``, at most ``maxiters``
    passes, as astropy's ``sigma_clip``); the background is the median of what is kept and the
    rms its standard deviation. Boxes more than ``exclude_fraction`` masked count as missing.
    Both meshes are median-filtered over ``filter_size`` boxes (missing boxes take the
    median of their neighbours) and interpolated bilinearly between box centres.
    """
    ny, nx = data.shape
    box = int(max(4, min(box_size, ny, nx)))
    my, mx = -(-ny // box), -(-nx // box)
    padded = np.full((my * box, mx * box), np.nan, np.float32)
    padded[:ny, :nx] = np.where(mask, np.nan, data)
    boxes = np.sort(padded.reshape(my, box, mx, box).transpose(0, 2, 1, 3).reshape(my * mx, box * box), axis=1)
    level, rms, valid = (np.empty(my * mx), np.empty(my * mx), np.empty(my * mx, np.int64))
    _clipped_stats(boxes, float(nsigma), int(maxiters), level, rms, valid)
    level, rms, valid = level.reshape(my, mx), rms.reshape(my, mx), valid.reshape(my, mx)
    missing = valid < (1.0 - exclude_fraction) * box * box
    level[missing] = rms[missing] = np.nan
    return tuple(_resize(_median_filter(mesh, filter_size), ny, nx) for mesh in (level, rms))


@njit(cache=True)
def _clipped_stats(rows, nsigma, maxiters, level, rms, valid):
    """Sigma-clipped median and standard deviation of each row of ``rows``, sorted with its
    missing values (NaN) last: astropy's ``sigma_clip`` about the median, then the median and
    standard deviation of what it keeps."""
    for r in range(rows.shape[0]):
        values = rows[r]
        n = 0
        while n < values.size and not np.isnan(values[n]):
            n += 1
        valid[r] = n
        if n == 0:
            level[r] = rms[r] = np.nan
            continue
        lo, hi = 0, n
        median, std = _median_std(values, lo, hi)
        for _ in range(maxiters):
            new_lo = np.searchsorted(values[:n], median - nsigma * std, side="left")
            new_hi = np.searchsorted(values[:n], median + nsigma * std, side="right")
            if (new_lo == lo and new_hi == hi) or new_hi <= new_lo:
                break
            lo, hi = new_lo, new_hi
            median, std = _median_std(values, lo, hi)
        level[r], rms[r] = median, std


@njit(cache=True)
def _median_std(values, lo, hi):
    """Median and standard deviation of the sorted ``values[lo:hi]`` (float64 sums)."""
    n = hi - lo
    median = 0.5 * (np.float64(values[lo + (n - 1) // 2]) + np.float64(values[lo + n // 2]))
    total = 0.0
    for k in range(lo, hi):
        total += values[k]
    mean = total / n
    spread = 0.0
    for k in range(lo, hi):
        spread += (values[k] - mean) ** 2
    return median, np.sqrt(spread / n)


def _median_filter(mesh, size):
    """Median of each mesh value's ``size`` x ``size`` neighbourhood, ignoring missing (NaN)
    values; what is still missing takes the median of the whole mesh."""
    half = size // 2
    padded = np.pad(mesh, half, constant_values=np.nan)
    my, mx = mesh.shape
    stack = [padded[dy : dy + my, dx : dx + mx] for dy in range(size) for dx in range(size)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-missing neighbourhoods
        out = np.nanmedian(stack, axis=0)
    if np.isnan(out).any():
        out[np.isnan(out)] = np.nanmedian(mesh) if np.isfinite(mesh).any() else 0.0
    return out


def _resize(mesh, ny, nx):
    """Bilinear interpolation of a mesh (one value per box, at the box centre) to ny x nx."""
    return (_linear_weights(ny, mesh.shape[0]) @ mesh.astype(np.float32) @ _linear_weights(nx, mesh.shape[1]).T)


def _linear_weights(n, nmesh):
    """(n, nmesh) matrix interpolating linearly between box centres, constant beyond them."""
    box = -(-n // nmesh)
    u = np.clip((np.arange(n) + 0.5) / box - 0.5, 0, nmesh - 1)
    first = np.minimum(np.floor(u).astype(int), nmesh - 2) if nmesh > 1 else np.zeros(n, int)
    frac = u - first
    weights = np.zeros((n, nmesh), np.float32)
    weights[np.arange(n), first] = 1 - frac
    if nmesh > 1:
        weights[np.arange(n), first + 1] += frac
    return weights


def detection_kernel(fwhm):
    """The normalized 1-D Gaussian of ``fwhm`` pixels, integrated over each of
    2 ceil(1.5 fwhm) + 1 pixels, whose outer product is the 2-D detection kernel."""
    from scipy.special import erf

    half = int(np.ceil(1.5 * fwhm))
    edges = (np.arange(-half, half + 2) - 0.5) / (np.sqrt(2.0) * fwhm * FWHM_TO_SIGMA)
    row = np.diff(erf(edges))
    return (row / row.sum()).astype(np.float32)


def detection_image(data, fwhm=2.0):
    """``data`` (zero where masked) convolved with the normalized 2-D Gaussian of ``fwhm``
    pixels, in two separable passes; outside the image counts as zero."""
    row = detection_kernel(fwhm)
    out = ndimage.correlate1d(data, row, axis=0, mode="constant", cval=0.0)
    return ndimage.correlate1d(out, row, axis=1, mode="constant", cval=0.0, output=out)


def detect(convolved, rms, mask, snr_threshold=3.0, npixels=5, deblend=False, deblend_nlevels=32,
           deblend_contrast=0.001):
    """Segment ``convolved`` above ``snr_threshold * rms`` (8-connected, at least ``npixels``).

    Returns ``(objects, segmentation, blended)``: sep's object records (first and second
    moments of the convolved image over each segment, bounding boxes), the int32
    segmentation map whose value ``i + 1`` marks the pixels of record ``i``, and True for
    the sources split from a larger segment. With ``deblend``, each segment is split by
    photutils' multi-threshold deblending (``deblend_nlevels`` levels, branches holding at
    least ``deblend_contrast`` of the flux, pixels shared out by watershed).
    """
    import sep

    # sep keeps the pixels of every open segment on a stack: room for an eighth of the image.
    sep.set_extract_pixstack(max(300_000, convolved.size // 8))
    found = dict(err=rms, mask=mask, minarea=npixels, filter_kernel=None, deblend_cont=1.0, clean=False)
    objects, segmentation = sep.extract(convolved, snr_threshold, segmentation_map=True, **found)
    blended = np.zeros(len(objects), bool)
    if not deblend or not len(objects):
        return objects, segmentation, blended
    from photutils.segmentation import SegmentationImage, deblend_sources

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        split = deblend_sources(convolved, SegmentationImage(segmentation), npixels, nlevels=deblend_nlevels,
                                contrast=deblend_contrast, progress_bar=False)
    split.relabel_consecutive()
    children = split.data
    objects, children = sep.extract(convolved, snr_threshold, segmentation_map=children, **found)
    inside = children > 0
    pairs = np.unique(np.stack([children[inside], segmentation[inside]]), axis=1)
    blended = np.zeros(len(objects), bool)
    blended[pairs[0] - 1] = np.bincount(pairs[1])[pairs[1]] > 1
    return objects, children, blended


def _aperture_name(radius):
    return "aper_r" + f"{radius:g}".replace(".", "p")


def _empty_table(aperture_radii, photometric):
    names = [
        "label", "x_centroid", "y_centroid", "x_centroid_win", "y_centroid_win", "ra", "dec",
        "area", "semimajor_axis", "semiminor_axis", "orientation", "ellipticity", "fwhm",
        "background", "segment_flux", "segment_flux_err",
    ]
    for r in aperture_radii:
        names += [f"{_aperture_name(r)}_flux", f"{_aperture_name(r)}_flux_err"]
    names += ["kron_radius", "kron_flux", "kron_flux_err", "flags"]
    table = Table({n: np.zeros(0, dtype=np.int32 if n in ("label", "flags") else float) for n in names})
    if photometric:
        _add_calibrated_fluxes(table, 1.0)
    return table


def _flux_columns(table):
    return [n for n in table.colnames if n.endswith("_flux")]


def _add_calibrated_fluxes(table, njy_per_dn_s):
    for name in _flux_columns(table):
        flux = np.asarray(table[name], float) * njy_per_dn_s
        err = np.asarray(table[name + "_err"], float) * njy_per_dn_s
        table[name + "_njy"] = flux
        table[name + "_err_njy"] = err
        with np.errstate(divide="ignore", invalid="ignore"):
            table[name.removesuffix("_flux") + "_abmag"] = np.where(
                flux > 0, AB_ZEROPOINT_NJY - 2.5 * np.log10(flux), np.nan
            )
            table[name.removesuffix("_flux") + "_abmag_err"] = np.where(
                flux > 0, 2.5 / np.log(10) * err / flux, np.nan
            )


def source_catalog(
    data,
    err,
    mask=None,
    saturated=None,
    wcs=None,
    *,
    bkg_box_size=64,
    bkg_filter_size=3,
    kernel_fwhm=2.0,
    snr_threshold=3.0,
    npixels=5,
    deblend=False,
    deblend_nlevels=32,
    deblend_contrast=0.001,
    aperture_radii=(3.0,),
    kron_params=(2.5, 1.4),
    conversion_megajanskys=None,
    pixelarea_steradians=None,
):
    """Detect and measure sources; return ``(table, segmentation)``.

    ``data``, ``err``: (ny, nx) image and its 1-sigma error. ``mask``: True where a pixel is
    not to be used; ``saturated``: True where a pixel saturated (flag only). ``wcs``: a
    callable (x, y) -> (ra, dec) in degrees (a gwcs), or None (ra and dec are then NaN).
    ``kron_params``: the Kron aperture in Kron radii and the smallest Kron radius.
    ``segmentation`` is int32 with 0 for background and the table's ``label`` elsewhere.

    As in photutils, centroids and shapes are moments of the detection image over the
    segment; windowed centroids, aperture and Kron sums are taken on the background-subtracted
    image, apertures centred on the centroid, with pixels of other segments left out and the
    sum scaled up by the aperture's area over its unmasked area.
    """
    import sep

    data = np.asarray(data, dtype=np.float32)
    err = np.asarray(err, dtype=np.float32)
    mask = np.zeros(data.shape, bool) if mask is None else np.asarray(mask, bool)
    mask = mask | ~np.isfinite(data) | ~np.isfinite(err)
    photometric = conversion_megajanskys is not None and pixelarea_steradians is not None
    aperture_radii = tuple(float(r) for r in aperture_radii)

    if mask.all():
        return _empty_table(aperture_radii, photometric), np.zeros(data.shape, np.int32)

    subtracted = np.where(mask, np.float32(0), data)
    bkg, bkg_rms = background(subtracted, mask, bkg_box_size, bkg_filter_size)
    np.subtract(subtracted, bkg, out=subtracted, where=~mask)
    convolved = detection_image(subtracted, kernel_fwhm)
    objects, segmentation, blended = detect(convolved, bkg_rms, mask, snr_threshold, npixels, deblend,
                                            deblend_nlevels, deblend_contrast)
    if not len(objects):
        return _empty_table(aperture_radii, photometric), segmentation
    del convolved

    error = np.where(mask, np.float32(0), err)
    labels = np.arange(1, len(objects) + 1, dtype=np.int32)
    x, y = objects["x"], objects["y"]
    a, b, theta = objects["a"], objects["b"], objects["theta"]
    near = dict(mask=mask, segmap=segmentation, seg_id=labels)  # neighbours' pixels left out
    table = Table()
    table["label"] = labels

    # Kron radius within 6 second-moment radii, at least kron_params[1]; NaN when above 6.
    kron_scale, kron_min = float(kron_params[0]), float(kron_params[1])
    kron_radius, _ = sep.kron_radius(subtracted, x, y, a, b, theta, KRON_MEASUREMENT_RADIUS, **near)
    kron_radius = np.where(kron_radius > KRON_MEASUREMENT_RADIUS, np.nan, np.maximum(kron_radius, kron_min))
    good_kron = np.isfinite(kron_radius)
    kron_flux, kron_err, _ = sep.sum_ellipse(subtracted, x, y, a, b, theta, np.where(good_kron, kron_scale * kron_radius, 0.0),
                                             err=error, subpix=0, **near)
    kron_flux[~good_kron] = np.nan
    kron_err[~good_kron] = np.nan

    # Windowed centroid (Source Extractor's XWIN): a Gaussian window whose FWHM is twice the
    # half-light radius (within the Kron aperture, of the Kron flux; at least 0.5 pixel).
    # As photutils: the radius from finely sampled circles, the window cut at pixel centres.
    half_light, _ = sep.flux_radius(subtracted, x, y, np.where(good_kron, kron_scale * kron_radius * a, 1.0), 0.5,
                                    normflux=np.where(good_kron & (kron_flux > 0), kron_flux, 1.0), subpix=16, **near)
    half_light = np.maximum(half_light, 0.5)
    xwin, ywin, _ = sep.winpos(subtracted, x, y, 2.0 * half_light * FWHM_TO_SIGMA, mask=mask, subpix=1)
    # Back to the plain centroid where the window failed or left the 1-sigma ellipse.
    dx, dy = xwin - x, ywin - y
    reset = ~np.isfinite(xwin) | ~np.isfinite(ywin) | ~good_kron | (kron_flux <= 0)
    reset |= objects["cxx"] * dx**2 + objects["cxy"] * dx * dy + objects["cyy"] * dy**2 > 1
    xwin[reset], ywin[reset] = x[reset], y[reset]

    table["x_centroid"], table["y_centroid"] = x, y
    table["x_centroid_win"], table["y_centroid_win"] = xwin, ywin
    if wcs is not None:
        ra, dec = wcs(xwin, ywin)
        table["ra"] = np.mod(np.asarray(ra, float), 360.0)
        table["dec"] = np.asarray(dec, float)
    else:
        table["ra"] = np.full(len(labels), np.nan)
        table["dec"] = np.full(len(labels), np.nan)
    sums = _segment_sums(segmentation, len(labels), subtracted, error**2, bkg)
    table["area"] = sums[0]
    table["semimajor_axis"], table["semiminor_axis"] = a, b
    table["orientation"] = np.degrees(theta)
    table["ellipticity"] = 1.0 - b / a
    # Gaussian-equivalent FWHM from the second moments.
    table["fwhm"] = 2.0 * np.sqrt(2.0 * np.log(2.0)) * np.sqrt(0.5 * (a**2 + b**2))
    table["background"] = sums[3] / sums[0]
    table["segment_flux"] = sums[1]
    table["segment_flux_err"] = np.sqrt(sums[2])
    for radius in aperture_radii:
        flux, flux_err, _ = sep.sum_circle(subtracted, x, y, radius, err=error, subpix=0, **near)
        table[f"{_aperture_name(radius)}_flux"] = flux
        table[f"{_aperture_name(radius)}_flux_err"] = flux_err
    table["kron_radius"] = kron_radius
    table["kron_flux"] = kron_flux
    table["kron_flux_err"] = kron_err
    table["flags"] = _flags(objects, segmentation, mask, saturated, kron_scale * kron_radius * a, blended)

    if photometric:
        _add_calibrated_fluxes(table, float(conversion_megajanskys) * float(pixelarea_steradians) * MJY_TO_NJY)
    for name in ("ra", "dec"):
        table[name].unit = "deg"
    return table, segmentation


def _segment_sums(segmentation, nlabels, *images):
    """Pixel count, then the sum of each image, per label 1..nlabels (float64 arrays)."""
    inside = np.flatnonzero(segmentation)
    index = segmentation.ravel()[inside]
    out = [np.bincount(index, minlength=nlabels + 1)[1:].astype(float)]
    for image in images:
        out.append(np.bincount(index, weights=image.ravel()[inside], minlength=nlabels + 1)[1:])
    return out


def _labels_touching(pixels, segmentation):
    """Labels of the segments that hold one of ``pixels`` or lie next to one (8-connected)."""
    ys, xs = np.nonzero(pixels)
    ny, nx = segmentation.shape
    found = [segmentation[np.clip(ys + dy, 0, ny - 1), np.clip(xs + dx, 0, nx - 1)]
             for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return np.unique(np.concatenate(found))


def _flags(objects, segmentation, mask, saturated, kron_semimajor, blended):
    ny, nx = segmentation.shape
    labels = np.arange(1, len(objects) + 1)
    flags = np.zeros(len(objects), dtype=np.int32)
    # Edge: the segment touches the image border, or the Kron aperture leaves the image.
    x, y = objects["x"], objects["y"]
    edge = (objects["xmin"] == 0) | (objects["ymin"] == 0) | (objects["xmax"] == nx - 1) | (objects["ymax"] == ny - 1)
    with np.errstate(invalid="ignore"):
        edge |= ((x - kron_semimajor < -0.5) | (y - kron_semimajor < -0.5)
                 | (x + kron_semimajor > nx - 0.5) | (y + kron_semimajor > ny - 0.5))
    flags[edge] |= FLAG_EDGE
    # A masked or saturated pixel in a segment or next to it flags the segment.
    for pixels, bit in ((mask, FLAG_MASKED), (saturated, FLAG_SATURATED)):
        if pixels is not None and np.any(pixels):
            flags[np.isin(labels, _labels_touching(pixels, segmentation))] |= bit
    flags[blended] |= FLAG_BLENDED
    flags[~np.isfinite(kron_semimajor)] |= FLAG_BAD_KRON
    return flags
