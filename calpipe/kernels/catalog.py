"""Source detection and measurement on a count-rate image (photutils).

The image is background-subtracted with a sigma-clipped 2-D mesh, convolved with a Gaussian
kernel for detection, segmented above ``snr_threshold`` times the background rms with a
minimum area (optionally deblended), and each segment is measured: centroids (plain and
windowed), sky position (from the windowed centroid through a gwcs), segment, circular
aperture and Kron fluxes with errors from the error array, shape, and flags.

Units: positions in science pixels (0-based, pixel centres at integers), fluxes in the
image's units (DN/s). When the photometric conversion is known (``conversion_megajanskys``
in MJy/sr per DN/s and ``pixelarea_steradians``), every flux also gets a ``<name>_njy``
column (nJy) and an AB magnitude ``<name>_abmag`` with its error; a flux in DN/s times
conversion times pixel area is in MJy, times 1e15 in nJy.

``flags`` bits: 1 EDGE (segment touches the image edge or its Kron aperture leaves the
image), 2 MASKED (segment holds masked pixels), 4 SATURATED (segment holds saturated
pixels), 8 BLENDED (split from a larger segment by deblending), 16 BAD_KRON (no Kron flux).
"""

import warnings

import numpy as np
from astropy.stats import SigmaClip, sigma_clipped_stats
from astropy.table import Table
from scipy import ndimage

FLAG_EDGE = 1
FLAG_MASKED = 2
FLAG_SATURATED = 4
FLAG_BLENDED = 8
FLAG_BAD_KRON = 16

AB_ZEROPOINT_NJY = 2.5 * np.log10(3631e9)  # AB magnitude of 1 nJy is 31.4
MJY_TO_NJY = 1e15


def background(data, mask, box_size=64, filter_size=3, nsigma=3.0):
    """Sigma-clipped mesh background and its rms, each the image's shape (float32).

    The mesh comes from photutils; it is resized to the image bilinearly (each mesh value at
    its box centre), which on a smooth sky differs from photutils' bicubic resize by a few
    per cent of the rms and takes a fifth of the time. Falls back to one clipped median and
    standard deviation for the whole image when it is too small or too masked for a mesh.
    """
    from photutils.background import Background2D, MedianBackground, StdBackgroundRMS

    box = int(max(4, min(box_size, data.shape[0], data.shape[1])))
    clip = SigmaClip(sigma=nsigma, maxiters=10)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bkg = Background2D(
                data,
                box,
                mask=mask,
                filter_size=filter_size,
                sigma_clip=clip,
                bkg_estimator=MedianBackground(),
                bkg_rms_estimator=StdBackgroundRMS(),
                exclude_percentile=50.0,
            )
            meshes = bkg.background_mesh, bkg.background_rms_mesh
    except ValueError:
        good = data[~mask]
        if good.size == 0:
            return np.zeros_like(data, np.float32), np.ones_like(data, np.float32)
        _, median, std = sigma_clipped_stats(good, sigma=nsigma, maxiters=10)
        return np.full(data.shape, median, np.float32), np.full(data.shape, std, np.float32)
    ny, nx = data.shape
    return tuple(
        ndimage.zoom(np.asarray(mesh, np.float32), box, order=1, mode="nearest", grid_mode=True)[:ny, :nx]
        for mesh in meshes
    )


def detection_image(data, mask, fwhm=2.0):
    """The image convolved with a normalized Gaussian of ``fwhm`` pixels (masked pixels as 0).

    The pixel-integrated Gaussian is separable: two 1-D passes give the 2-D convolution.
    """
    from photutils.segmentation import make_2dgaussian_kernel

    size = 2 * int(np.ceil(1.5 * fwhm)) + 1
    kernel = make_2dgaussian_kernel(fwhm, size=size).array
    row = (kernel.sum(axis=0) / kernel.sum()).astype(np.float32)
    clean = np.where(mask, 0.0, data).astype(np.float32)
    out = ndimage.correlate1d(clean, row, axis=0, mode="constant", cval=0.0)
    return ndimage.correlate1d(out, row, axis=1, mode="constant", cval=0.0, output=out)


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
    kron_params=(2.5, 1.4, 0.0),
    conversion_megajanskys=None,
    pixelarea_steradians=None,
):
    """Detect and measure sources; return ``(table, segmentation)``.

    ``data``, ``err``: (ny, nx) image and its 1-sigma error. ``mask``: True where a pixel is
    not to be used; ``saturated``: True where a pixel saturated (flag only). ``wcs``: a
    callable (x, y) -> (ra, dec) in degrees (a gwcs), or None (ra and dec are then NaN).
    ``segmentation`` is int32 with 0 for background and the table's ``label`` elsewhere.
    """
    from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources

    data = np.asarray(data, dtype=np.float32)
    err = np.asarray(err, dtype=np.float32)
    mask = np.zeros(data.shape, bool) if mask is None else np.asarray(mask, bool)
    mask = mask | ~np.isfinite(data) | ~np.isfinite(err)
    photometric = conversion_megajanskys is not None and pixelarea_steradians is not None
    aperture_radii = tuple(float(r) for r in aperture_radii)
    segmentation = np.zeros(data.shape, dtype=np.int32)

    if mask.all():
        return _empty_table(aperture_radii, photometric), segmentation

    bkg, bkg_rms = background(data, mask, bkg_box_size, bkg_filter_size)
    subtracted = np.where(mask, 0.0, data - bkg).astype(np.float32)
    convolved = detection_image(subtracted, mask, kernel_fwhm)
    threshold = snr_threshold * bkg_rms
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no sources found" is an answer here, not a problem
        segm = detect_sources(convolved, threshold, npixels, mask=mask)
    if segm is None:
        return _empty_table(aperture_radii, photometric), segmentation

    parents = segm.data
    if deblend and segm.n_labels > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            segm = deblend_sources(
                convolved, segm, npixels, n_levels=deblend_nlevels, contrast=deblend_contrast,
                progress_bar=False,
            )

    error = np.where(mask, 0.0, err).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cat = SourceCatalog(
            subtracted, segm, convolved_data=convolved, error=error, mask=mask, background=bkg,
            kron_params=kron_params,
        )
        labels = np.asarray(cat.labels)
        table = Table()
        table["label"] = labels.astype(np.int32)
        table["x_centroid"] = np.asarray(cat.x_centroid, float)
        table["y_centroid"] = np.asarray(cat.y_centroid, float)
        xwin = np.asarray(cat.x_centroid_win, float)
        ywin = np.asarray(cat.y_centroid_win, float)
        # The windowed centroid can fail (e.g. a tiny faint segment): fall back to the plain one.
        bad = ~(np.isfinite(xwin) & np.isfinite(ywin))
        xwin[bad] = table["x_centroid"][bad]
        ywin[bad] = table["y_centroid"][bad]
        table["x_centroid_win"] = xwin
        table["y_centroid_win"] = ywin
        if wcs is not None:
            ra, dec = wcs(xwin, ywin)
            table["ra"] = np.mod(np.asarray(ra, float), 360.0)
            table["dec"] = np.asarray(dec, float)
        else:
            table["ra"] = np.full(len(labels), np.nan)
            table["dec"] = np.full(len(labels), np.nan)
        table["area"] = np.asarray(cat.area.value, float)
        table["semimajor_axis"] = np.asarray(cat.semimajor_axis.value, float)
        table["semiminor_axis"] = np.asarray(cat.semiminor_axis.value, float)
        table["orientation"] = np.asarray(cat.orientation.value, float)
        table["ellipticity"] = np.asarray(cat.ellipticity.value, float)
        # Gaussian-equivalent FWHM from the second moments (photutils' flux-radius FWHM is slow).
        table["fwhm"] = 2.0 * np.sqrt(2.0 * np.log(2.0)) * np.sqrt(
            0.5 * (table["semimajor_axis"] ** 2 + table["semiminor_axis"] ** 2)
        )
        table["background"] = np.asarray(cat.background_mean, float)
        table["segment_flux"] = np.asarray(cat.segment_flux, float)
        table["segment_flux_err"] = np.asarray(cat.segment_flux_err, float)
        for radius in aperture_radii:
            flux, flux_err = cat.circular_photometry(radius)
            table[f"{_aperture_name(radius)}_flux"] = np.asarray(flux, float)
            table[f"{_aperture_name(radius)}_flux_err"] = np.asarray(flux_err, float)
        table["kron_radius"] = np.asarray(cat.kron_radius.value, float)
        table["kron_flux"] = np.asarray(cat.kron_flux, float)
        table["kron_flux_err"] = np.asarray(cat.kron_flux_err, float)
        kron_apertures = cat.kron_aperture

    table["flags"] = _flags(segm.data, parents, labels, mask, saturated, kron_apertures, data.shape,
                            table["kron_flux"])
    if photometric:
        _add_calibrated_fluxes(table, float(conversion_megajanskys) * float(pixelarea_steradians) * MJY_TO_NJY)
    for name in ("ra", "dec"):
        table[name].unit = "deg"
    segmentation[...] = segm.data
    return table, segmentation


def _flags(labels_image, parents_image, labels, mask, saturated, kron_apertures, shape, kron_flux):
    flags = np.zeros(len(labels), dtype=np.int32)
    if not len(labels):
        return flags
    ny, nx = shape
    # Edge: the segment's bounding box touches the image border.
    slices = ndimage.find_objects(labels_image, max_label=int(labels.max()))
    for i, label in enumerate(labels):
        sl = slices[label - 1]
        if sl is None:
            continue
        if sl[0].start == 0 or sl[1].start == 0 or sl[0].stop == ny or sl[1].stop == nx:
            flags[i] |= FLAG_EDGE
        aperture = kron_apertures[i]
        if aperture is not None:
            (x, y), a = aperture.positions, max(aperture.a, aperture.b)
            if x - a < -0.5 or y - a < -0.5 or x + a > nx - 0.5 or y + a > ny - 0.5:
                flags[i] |= FLAG_EDGE
    # A masked or saturated pixel in a segment or next to it flags the segment.
    near = np.ones((3, 3), bool)
    for pixels, bit in ((mask, FLAG_MASKED), (saturated, FLAG_SATURATED)):
        if pixels is not None and np.any(pixels):
            touched = np.unique(labels_image[ndimage.binary_dilation(pixels, near) & (labels_image > 0)])
            flags[np.isin(labels, touched)] |= bit
    # Blended: the source's parent segment was split into more than one.
    inside = labels_image > 0
    pairs = np.unique(np.stack([labels_image[inside], parents_image[inside]]), axis=1)
    children = np.bincount(pairs[1], minlength=int(parents_image.max()) + 1)
    parent_of = dict(zip(pairs[0].tolist(), pairs[1].tolist()))
    for i, label in enumerate(labels):
        if children[parent_of.get(int(label), 0)] > 1:
            flags[i] |= FLAG_BLENDED
    flags[~np.isfinite(np.asarray(kron_flux, float))] |= FLAG_BAD_KRON
    return flags
