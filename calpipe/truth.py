"""How a calibrated image compares with the simulator's truth."""

import numpy as np
from scipy.spatial import cKDTree

from calpipe import dqflags

# Pixels whose flags say the calibrated value is not a plain measurement.
EXCLUDE = (
    dqflags.DO_NOT_USE | dqflags.SATURATED | dqflags.JUMP_DET | dqflags.NO_LIN_CORR
    | dqflags.NO_FLAT_FIELD | dqflags.NO_GAIN_VALUE | dqflags.DEAD | dqflags.HOT
    | dqflags.UNRELIABLE_DARK
)


def robust_std(values):
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def compare(cal, truth):
    """Statistics of ``(cal.data - truth.flux) / cal.err`` and of jump and saturation flags.

    ``cal`` is an ImageModel, ``truth`` the simulator's truth tree (a mapping).
    """
    data, err, dq = np.asarray(cal.data), np.asarray(cal.err), np.asarray(cal.dq)
    flux = np.asarray(truth["flux"])
    jumps = np.asarray(truth["jumps"])
    saturated = np.asarray(truth["saturated"]).astype(bool)
    clean = (jumps == 0) & ~saturated & ((dq & EXCLUDE) == 0) & (err > 0)
    pull = (data[clean] - flux[clean]) / err[clean]
    hit = (jumps > 0) & ~saturated & ((dq & (EXCLUDE & ~dqflags.JUMP_DET)) == 0) & (err > 0)
    hit_pull = np.abs(data[hit] - flux[hit]) / err[hit]
    return {
        "clean_pixels": int(clean.sum()),
        "median_pull": float(np.median(pull)) if pull.size else float("nan"),
        "robust_std_pull": robust_std(pull) if pull.size else float("nan"),
        "saturated_pixels": int(saturated.sum()),
        "saturated_flagged": float(np.mean(dq[saturated] & dqflags.SATURATED > 0)) if saturated.any() else 1.0,
        "jump_pixels": int(hit.sum()),
        "jumps_flagged": float(np.mean(dq[hit] & dqflags.JUMP_DET > 0)) if hit.any() else 1.0,
        "jump_pixels_within_5_sigma": float(np.mean(hit_pull < 5)) if hit.any() else 1.0,
    }


# -- sky: catalog positions, fluxes and the pointing fit ---------------------------------------
SNR_APERTURE = 3.0  # pixels: the aperture in which a truth star's S/N is predicted
ISOLATION = 8.0  # pixels: a star is isolated when no other star of >1% its flux is this close


def _match(x0, y0, x1, y1, radius):
    """Index into (x1, y1) of the nearest neighbour of each (x0, y0) within ``radius``, else -1."""
    if len(x1) == 0 or len(x0) == 0:
        return np.full(len(x0), -1)
    dist, index = cKDTree(np.column_stack([x1, y1])).query(np.column_stack([x0, y0]))
    return np.where(dist <= radius, index, -1)


def _separation_mas(ra0, dec0, ra1, dec1):
    ra0, dec0, ra1, dec1 = (np.radians(np.asarray(v, float)) for v in (ra0, dec0, ra1, dec1))
    # Haversine: accurate at milliarcsecond separations.
    h = np.sin((dec1 - dec0) / 2) ** 2 + np.cos(dec0) * np.cos(dec1) * np.sin((ra1 - ra0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(h))) * 3.6e6


def predicted_snr(err, x, y, flux, radius=SNR_APERTURE):
    """S/N of each star in a ``radius`` aperture: its truth flux inside the aperture (a Gaussian
    core's share) over the quadrature sum of the calibrated error array there."""
    from photutils.aperture import CircularAperture, aperture_photometry

    from calpipe.simulate.exposure import PSF_CORE_SIGMA, PSF_HALO_FRACTION, PSF_HALO_SIGMA

    if len(x) == 0:
        return np.zeros(0)
    apertures = CircularAperture(np.column_stack([x, y]), r=radius)
    variance = aperture_photometry(np.asarray(err, float) ** 2, apertures)["aperture_sum"]
    share = ((1 - PSF_HALO_FRACTION) * (1 - np.exp(-radius**2 / (2 * PSF_CORE_SIGMA**2)))
             + PSF_HALO_FRACTION * (1 - np.exp(-radius**2 / (2 * PSF_HALO_SIGMA**2))))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(variance) > 0, share * flux / np.sqrt(np.asarray(variance)), 0.0)


def compare_catalog(cal, truth, flux_column="aper_r6_flux", match_radius=1.0, before=None):
    """How the catalog and the aligned WCS of ``cal`` compare with the truth's ``sources``.

    Stars are matched to detections by pixel position (within ``match_radius`` pixels).
    ``before`` is the catalog's sky positions before alignment (``(ra, dec)``), when known.
    Returns a dict: matches, median separation (mas) after (and before), completeness of
    stars with predicted S/N > 20, median flux ratio of isolated unsaturated matched
    stars, and the recorded pointing fit against the injected error.
    """
    src = truth["sources"]
    cat = cal.source_catalog
    tx, ty = np.asarray(src["x"], float), np.asarray(src["y"], float)
    tflux = np.asarray(src["flux"], float)
    index = _match(tx, ty, np.asarray(cat["x_centroid_win"], float), np.asarray(cat["y_centroid_win"], float),
                   match_radius)
    found = index >= 0
    k = index[found]
    out = {"stars": len(tx), "detections": len(cat), "matched": int(found.sum())}

    sep = _separation_mas(np.asarray(src["ra"])[found], np.asarray(src["dec"])[found],
                          np.asarray(cat["ra"])[k], np.asarray(cat["dec"])[k])
    out["median_sep_mas"] = float(np.median(sep)) if sep.size else float("nan")
    if before is not None:
        sep0 = _separation_mas(np.asarray(src["ra"])[found], np.asarray(src["dec"])[found],
                               np.asarray(before[0])[k], np.asarray(before[1])[k])
        out["median_sep_before_mas"] = float(np.median(sep0)) if sep0.size else float("nan")

    snr = predicted_snr(cal.err, tx, ty, tflux)
    dq = np.asarray(cal.dq)
    ny, nx = dq.shape
    ix = np.clip(np.rint(tx).astype(int), 0, nx - 1)
    iy = np.clip(np.rint(ty).astype(int), 0, ny - 1)
    clean_peak = (dq[iy, ix] & (dqflags.SATURATED | dqflags.DO_NOT_USE)) == 0
    inside = (tx > 8) & (tx < nx - 9) & (ty > 8) & (ty < ny - 9)
    bright = (snr > 20) & inside & clean_peak
    out["snr20_stars"] = int(bright.sum())
    out["completeness_snr20"] = float(found[bright].mean()) if bright.any() else float("nan")

    # Isolated: no other star with more than 1% of the flux within ISOLATION pixels.
    isolated = np.ones(len(tx), bool)
    if len(tx) > 1:
        tree = cKDTree(np.column_stack([tx, ty]))
        for i, j in tree.query_pairs(ISOLATION):
            if tflux[j] > 0.01 * tflux[i]:
                isolated[i] = False
            if tflux[i] > 0.01 * tflux[j]:
                isolated[j] = False
    use = found & isolated & bright
    flags = np.asarray(cat["flags"])[np.maximum(index, 0)]
    use &= flags == 0
    ratio = np.asarray(cat[flux_column], float)[index[use]] / tflux[use]
    out["isolated_stars"] = int(use.sum())
    out["median_flux_ratio"] = float(np.median(ratio)) if ratio.size else float("nan")

    fit = cal.meta.get("wcs_fit_results")
    error = truth["meta"].get("pointing_error") if "meta" in truth else None
    if fit is not None and error is not None and "correction" in fit:
        corr = fit["correction"]
        # The fit undoes the injected error: correction = -error.
        out["shift_residual_mas"] = float(np.hypot(corr["dra_arcsec"] + error["dra_arcsec"],
                                                   corr["ddec_arcsec"] + error["ddec_arcsec"]) * 1e3)
        out["roll_residual_arcsec"] = float(abs(corr["rotation_arcsec"] + error["droll_deg"] * 3600.0))
    return out


def wcs_agreement(cal_a, sources_a, cal_b, sources_b, pixel_scale_mas=110.0):
    """rms distance (pixels) between where two aligned WCSs put the stars both exposures see,
    each evaluated at the stars' true pixel positions in its exposure (truth ``sources``):
    the relative alignment error, free of centroid noise. Returns ``(rms, nstars)``."""
    common, ia, ib = np.intersect1d(np.asarray(sources_a["source_id"]), np.asarray(sources_b["source_id"]),
                                    return_indices=True)
    ra_a, dec_a = cal_a.meta.wcs(np.asarray(sources_a["x"])[ia], np.asarray(sources_a["y"])[ia],
                                 with_bounding_box=False)
    ra_b, dec_b = cal_b.meta.wcs(np.asarray(sources_b["x"])[ib], np.asarray(sources_b["y"])[ib],
                                 with_bounding_box=False)
    dist = _separation_mas(ra_a, dec_a, ra_b, dec_b)
    return (float(np.sqrt(np.mean(dist**2)) / pixel_scale_mas) if dist.size else float("nan")), len(common)
