"""Features of a Level-3 product from its Level-1 members' normalised metadata.

Pure functions: normalised exposure records in (see :mod:`calpipe.associations.pool`),
plain dicts out. Encoding categorical values into codes is the database's job
(:func:`calpipe.training.db.assign_codes`).

Sizes
-----
``input_size_kb`` sums the members' file sizes; ``n_pixels`` sums the pixels of one readout
(rows x columns of the detector or subarray read) over the members, and
``exposure_pixels`` is the largest member's: the calibrated arrays scale with them, and
they are known before a run. 0 means not known (an older record, a report row without
SUBSIZE1/SUBSIZE2).

Pointing offsets
----------------
Each exposure points at (RA_REF, DEC_REF) (falling back to CRVAL1/2, then the target). The
product's fiducial is the normalised mean of the members' pointing unit vectors; each
exposure's offset is its great-circle distance from the fiducial in pixels of its own
detector. Over a product's offsets: ``max_offset``, ``mean_offset``, ``sigma_offset``
(population standard deviation), ``err_offset`` (sigma / sqrt(n)), and the high tail —
offsets above mean + sigma — as ``sigma1_mean`` (their mean) and ``frac`` (their fraction).
The ``targ_*`` features are the same statistics against the target position. A product with
no valid pointing has all offsets 0.
"""

import math

import numpy as np

# Pixel scale in arcsec per pixel, by instrument and (where it differs) detector.
PIXEL_SCALE = {
    "NIRCAM": 0.031, "NIRCAM_LONG": 0.063, "MIRI": 0.11, "NIRISS": 0.0656,
    "NIRSPEC": 0.1, "FGS": 0.069, "WFI": 0.11,
}
DEFAULT_PIXEL_SCALE = 0.1

CATEGORICAL = (
    "instr", "detector", "exp_type", "visitype", "filter", "pupil", "grating", "fxd_slit",
    "channel", "band", "subarray",
)
BOOLEAN = ("bkgdtarg", "is_imprt", "tsovisit", "crowdfld")
OFFSETS = ("max_offset", "mean_offset", "sigma_offset", "err_offset", "sigma1_mean", "frac")
NUMERIC = (
    "n_exposures", "n_detectors", "nexposur", "numdthpt", "nresultants", "gs_mag",
    "input_size_kb", "n_pixels", "exposure_pixels",
    *OFFSETS, *(f"targ_{k}" for k in OFFSETS),
)
FEATURES = CATEGORICAL + BOOLEAN + NUMERIC


def pixel_scale(exp):
    instrument, detector = exp["instrume"], exp["detector"]
    if instrument == "NIRCAM" and detector.endswith("LONG"):
        return PIXEL_SCALE["NIRCAM_LONG"]
    return PIXEL_SCALE.get(instrument, DEFAULT_PIXEL_SCALE)


def _unit(ra_deg, dec_deg):
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def mean_position(ra_deg, dec_deg):
    """Normalised mean of unit vectors, as (ra, dec) in degrees; NaN when none is valid."""
    ra, dec = np.asarray(ra_deg, float), np.asarray(dec_deg, float)
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        return math.nan, math.nan
    v = _unit(ra[ok], dec[ok]).sum(axis=0)
    norm = np.linalg.norm(v)
    if norm == 0:
        return math.nan, math.nan
    x, y, z = v / norm
    return float(np.degrees(np.arctan2(y, x)) % 360.0), float(np.degrees(np.arcsin(np.clip(z, -1, 1))))


def separation_arcsec(ra1, dec1, ra2, dec2):
    """Great-circle distance in arcsec (Vincenty's formula, stable at all distances)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(a, float)) for a in (ra1, dec1, ra2, dec2))
    dra = ra2 - ra1
    num = np.hypot(np.cos(dec2) * np.sin(dra), np.cos(dec1) * np.sin(dec2) - np.sin(dec1) * np.cos(dec2) * np.cos(dra))
    den = np.sin(dec1) * np.sin(dec2) + np.cos(dec1) * np.cos(dec2) * np.cos(dra)
    return np.degrees(np.arctan2(num, den)) * 3600.0


def offset_stats(offsets):
    """Summary statistics of pixel offsets (see the module notes); zeros when empty."""
    o = np.asarray(offsets, float)
    o = o[np.isfinite(o)]
    if o.size == 0:
        return dict.fromkeys(OFFSETS, 0.0)
    mean, sigma = float(o.mean()), float(o.std())
    high = o[o > mean + sigma]
    return {
        "max_offset": float(o.max()),
        "mean_offset": mean,
        "sigma_offset": sigma,
        "err_offset": sigma / math.sqrt(o.size),
        "sigma1_mean": float(high.mean()) if high.size else 0.0,
        "frac": high.size / o.size,
    }


def pointing_offsets(exps, ra0, dec0):
    """Pixel offset of each exposure's pointing from (ra0, dec0); NaN where unknown."""
    ra = [e["ra_ref"] for e in exps]
    dec = [e["dec_ref"] for e in exps]
    scale = np.array([pixel_scale(e) for e in exps])
    return separation_arcsec(ra, dec, ra0, dec0) / scale


def _max_int(exps, key):
    return max(int(e[key]) for e in exps)


def product_features(exps):
    """Raw (unencoded) features of a product from its member exposures.

    Categorical values are taken from the first science member (members are grouped by
    optical path, so they agree); the detector feature is the sorted detector set joined
    with ``|``.
    """
    if not exps:
        raise ValueError("a product needs at least one exposure")
    science = [e for e in exps if not (e["bkgdtarg"] or e["is_imprt"])] or list(exps)
    first = science[0]
    detectors = sorted({e["detector"] for e in exps})
    feats = {
        "instr": first["instrume"],
        "detector": "|".join(detectors),
        "exp_type": first["exp_type"],
        "visitype": first["visitype"],
        "filter": first["filter"],
        "pupil": first["pupil"],
        "grating": first["grating"],
        "fxd_slit": first["fxd_slit"],
        "channel": "|".join(sorted({e["channel"] for e in exps})),
        "band": "|".join(sorted({e["band"] for e in exps})),
        "subarray": first["subarray"],
    }
    feats.update({k: int(any(e[k] for e in exps)) for k in BOOLEAN})
    gs = [e["gs_mag"] for e in exps if math.isfinite(e["gs_mag"])]
    sizes = [e.get("image_size_kb", math.nan) for e in exps]
    feats.update({
        "n_exposures": len(exps),
        "n_detectors": len(detectors),
        "nexposur": _max_int(exps, "nexposur"),
        "numdthpt": _max_int(exps, "numdthpt"),
        "nresultants": _max_int(exps, "nresultants"),
        "gs_mag": float(np.mean(gs)) if gs else 0.0,
        "input_size_kb": float(np.nansum(sizes)) if any(math.isfinite(s) for s in sizes) else 0.0,
        # Pixels of one readout, summed over the members and the largest: what the
        # calibration's arrays scale with, known before a run (0: not known).
        "n_pixels": sum(e.get("npixels", 0) for e in exps),
        "exposure_pixels": max(e.get("npixels", 0) for e in exps),
    })
    ra0, dec0 = mean_position([e["ra_ref"] for e in exps], [e["dec_ref"] for e in exps])
    feats.update(offset_stats(pointing_offsets(exps, ra0, dec0)))
    tra, tdec = mean_position([e["targ_ra"] for e in science], [e["targ_dec"] for e in science])
    feats.update({f"targ_{k}": v for k, v in offset_stats(pointing_offsets(exps, tra, tdec)).items()})
    return feats


def categorical_values(features):
    """``{feature: value}`` of the categorical features, for encoding."""
    return {k: str(features[k]) for k in CATEGORICAL}


def encode(features, table):
    """Encoded feature row: categorical values replaced by their codes from ``table``."""
    row = dict(features)
    for k in CATEGORICAL:
        row[k] = table[k][str(features[k])]
    return row
