"""Alignment of exposures' WCSs: relative (to one another), then absolute (to a reference catalog).

Built on tweakwcs' V2/V3 tangent-plane corrector: sources are matched in the tangent plane
of the reference point (arcsec), first offset from a 2-D histogram of separations, then
tolerance matching; a linear transform is fitted with sigma clipping and applied to each
gwcs as a correction inserted after the ``v2v3vacorr`` frame.

Nothing here raises for a field that cannot be aligned: every exposure gets a result with
``status`` ``"SUCCESS"``, ``"FAILED"`` (with a ``reason``; its WCS is returned untouched) or
``"SKIPPED"``.

Fit conventions (tweakwcs'): corrected tangent-plane position = matrix @ position + shift,
the tangent plane centred on the exposure's (v2_ref, v3_ref) with its axes along the V2/V3
directions; ``shift`` in arcsec, ``rotation`` in degrees, ``rms`` the root-mean-square
residual (arcsec) of the matched sources after the fit.
"""

import warnings
from contextlib import contextmanager

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.time import Time

from calpipe.detector import GAIA_EPOCH

FITGEOMS = ("shift", "rshift", "rscale", "general")

_RA_NAMES = ("ra", "ra_deg", "raj2000", "ra_icrs")
_DEC_NAMES = ("dec", "dec_deg", "dej2000", "decj2000", "de_icrs", "dec_icrs")
_PMRA_NAMES = ("pmra", "pm_ra", "pm_ra_cosdec", "pmra_cosdec")
_PMDEC_NAMES = ("pmdec", "pm_dec", "pmde")
_EPOCH_NAMES = ("ref_epoch", "epoch", "epoch_jyear")


def propagate(ra, dec, pmra, pmdec, from_epoch, to_epoch):
    """Positions (deg) moved by proper motions (mas/yr; ``pmra`` includes cos Dec) between
    Julian-year epochs. ``from_epoch`` may be one value or one per star."""
    ra = np.asarray(ra, float)
    dec = np.asarray(dec, float)
    if ra.size == 0:
        return ra.copy(), dec.copy()
    from_epoch = np.broadcast_to(np.asarray(from_epoch, float), ra.shape)
    if np.allclose(from_epoch, to_epoch):
        return ra.copy(), dec.copy()
    coords = SkyCoord(
        ra=ra * u.deg,
        dec=dec * u.deg,
        pm_ra_cosdec=np.nan_to_num(np.asarray(pmra, float)) * u.mas / u.yr,
        pm_dec=np.nan_to_num(np.asarray(pmdec, float)) * u.mas / u.yr,
        obstime=Time(from_epoch, format="jyear", scale="tcb"),
        frame="icrs",
    )
    with warnings.catch_warnings():
        # Without a distance ERFA takes the star as very distant and warns; that is intended.
        warnings.simplefilter("ignore")
        moved = coords.apply_space_motion(new_obstime=Time(to_epoch, format="jyear", scale="tcb"))
    return np.mod(moved.ra.deg, 360.0), moved.dec.deg


def _column(table, names):
    lower = {name.lower(): name for name in table.colnames}
    for name in names:
        if name in lower:
            return lower[name]
    return None


def reference_at_epoch(table, epoch, default_epoch=GAIA_EPOCH):
    """A reference catalog with ``RA``/``DEC`` (deg) at ``epoch`` (Julian year), for tweakwcs.

    Columns are found case-insensitively (ra/dec, pmra/pmdec, ref_epoch or epoch); the epoch
    may also be ``table.meta['ref_epoch']`` or ``['epoch']``, else ``default_epoch``. Rows
    without a finite position are dropped. Returns ``(table, note)``, ``note`` saying whether
    proper motions were applied.
    """
    ra_name, dec_name = _column(table, _RA_NAMES), _column(table, _DEC_NAMES)
    if ra_name is None or dec_name is None:
        raise KeyError(f"reference catalog needs ra and dec columns, has {table.colnames}")
    ra = np.asarray(table[ra_name], float)
    dec = np.asarray(table[dec_name], float)
    pmra_name, pmdec_name = _column(table, _PMRA_NAMES), _column(table, _PMDEC_NAMES)
    if pmra_name is None or pmdec_name is None:
        note = "no proper motions in the reference catalog: positions used as they are"
    else:
        note = "no exposure epoch given: reference positions used as they are"
    if pmra_name is not None and pmdec_name is not None and epoch is not None:
        epoch_name = _column(table, _EPOCH_NAMES)
        if epoch_name is not None:
            ref_epoch = np.asarray(table[epoch_name], float)
        else:
            meta = {k.lower(): v for k, v in table.meta.items()}
            ref_epoch = float(meta.get("ref_epoch", meta.get("epoch", default_epoch)))
        pmra = np.asarray(table[pmra_name], float)
        pmdec = np.asarray(table[pmdec_name], float)
        ra, dec = propagate(ra, dec, pmra, pmdec, ref_epoch, epoch)
        mean_epoch = float(np.nanmean(ref_epoch)) if np.size(ref_epoch) else float("nan")
        note = f"proper motions applied from epoch {mean_epoch:.3f} to {epoch:.3f}"
    good = np.isfinite(ra) & np.isfinite(dec)
    out = Table({"RA": ra[good], "DEC": dec[good]})
    return out, note


def _fit_summary(info):
    """The JSON-friendly part of a tweakwcs ``fit_info``."""
    fitgeom = info.get("fitgeom")
    rot = info.get("proper_rot") if fitgeom in ("rshift", "rscale") else info.get("<rot>")
    return {
        "fitgeom": fitgeom,
        "shift": [float(v) for v in info["shift"]],
        "rotation": float(rot) if rot is not None else 0.0,
        "scale": float(info.get("<scale>", 1.0)),
        "skew": float(info.get("skew", 0.0)),
        "matrix": [[float(v) for v in row] for row in np.asarray(info["matrix"])],
        "rms": float(info["rmse"]),
        "mae": float(info["mae"]),
        "nmatches": int(info.get("nmatches", 0)),
        "nfit": int(np.count_nonzero(info.get("fitmask", []))),
    }


def _corrector(wcs, wcsinfo, catalog, name, group_id=None):
    """A tweakwcs corrector for one exposure; it fits a deep copy of ``wcs``, never ``wcs`` itself."""
    from tweakwcs.correctors import RomanWCSCorrector

    meta = {"catalog": catalog, "name": name, "group_id": group_id}
    return RomanWCSCorrector(wcs, dict(wcsinfo), meta=meta)


ON_ARC_TOLERANCE = 3e-11  # radians: spherical_geometry's own tolerance for a point on an arc


def _arc_length(a, b):
    """Angle (radians) between unit-sphere points ``a`` and ``b`` (triples or Nx3 arrays)."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0))


def point_on_arc(a, b, points):
    """Whether each of ``points`` lies on the great circle arc from ``a`` to ``b`` (unit vectors).

    True where the two pieces the point cuts the arc into add up to the arc's length within
    ``ON_ARC_TOLERANCE``: spherical_geometry's own NumPy definition of the test.
    """
    return np.abs(_arc_length(a, points) + _arc_length(points, b) - _arc_length(a, b)) < ON_ARC_TOLERANCE


@contextmanager
def _numpy_point_on_arc():
    """Have spherical_geometry use :func:`point_on_arc` while tweakwcs runs.

    tweakwcs orders the exposures by the overlaps of their footprints, which
    spherical_geometry computes by splitting polygon edges at every vertex lying on them.
    Its compiled point-on-arc test (1.4) costs about 0.35 ms per point and took three
    quarters of an 18-exposure relative alignment; the NumPy formula gives the same answers
    (tested) in a small fraction of the time.
    """
    from spherical_geometry import great_circle_arc

    compiled = great_circle_arc.intersects_point
    great_circle_arc.intersects_point = point_on_arc
    try:
        yield
    finally:
        great_circle_arc.intersects_point = compiled


def _run_tweakwcs(correctors, refcat, fitgeom, minobj, match, nclip, sigma):
    from tweakwcs.imalign import align_wcs

    with warnings.catch_warnings(), _numpy_point_on_arc():
        warnings.simplefilter("ignore")
        align_wcs(
            correctors,
            refcat=refcat,
            enforce_user_order=refcat is not None,
            expand_refcat=refcat is None,
            minobj=minobj,
            match=match,
            fitgeom=fitgeom,
            nclip=nclip,
            sigma=sigma,
        )


def _with_extent(corrected, original):
    """Give a corrected gwcs the bounding box and array shape of the one it came from."""
    if getattr(corrected, "array_shape", None) is None and original.array_shape is not None:
        corrected.array_shape = original.array_shape
    try:
        has_box = corrected.bounding_box is not None
    except NotImplementedError:
        has_box = False
    if not has_box:
        try:
            corrected.bounding_box = original.bounding_box
        except NotImplementedError:
            pass
    return corrected


def _status(corrector):
    info = corrector.meta.get("fit_info") or {}
    status = str(info.get("status", "FAILED: no fit"))
    return status, info


def align(
    exposures,
    refcat=None,
    *,
    epoch=None,
    fitgeom="rshift",
    abs_fitgeom="rshift",
    searchrad=2.0,
    separation=0.5,
    tolerance=0.5,
    use2dhist=True,
    abs_searchrad=2.0,
    abs_tolerance=0.5,
    nclip=3,
    sigma=3.0,
    min_matches=15,
):
    """Align ``exposures`` to one another, then (when ``refcat`` is given) to ``refcat``.

    ``exposures``: list of mappings with ``wcs`` (a calpipe gwcs), ``wcsinfo`` (v2_ref,
    v3_ref, roll_ref, ...), ``catalog`` (Table with ``x``, ``y`` science-pixel columns) and
    ``name``. ``refcat``: Table as for :func:`reference_at_epoch`; it is propagated to
    ``epoch`` (Julian year) when it has proper motions.

    Returns one dict per exposure: ``wcs`` (corrected, or the input one when not aligned),
    ``status`` (SUCCESS, FAILED or SKIPPED), ``reason``, ``relative`` and ``absolute`` (fit
    summaries, or None), ``refcat_note``. Never raises for too few sources or matches.
    """
    from tweakwcs.matchutils import XYXYMatch

    for geom in (fitgeom, abs_fitgeom):
        if geom not in FITGEOMS:
            raise ValueError(f"fitgeom must be one of {FITGEOMS}, not {geom!r}")
    n = len(exposures)
    results = [
        {"wcs": e["wcs"], "status": "SKIPPED", "reason": "", "relative": None, "absolute": None}
        for e in exposures
    ]
    if n == 0:
        return results

    # Exposures with too few sources cannot be matched: they keep their WCS.
    usable = []
    for i, e in enumerate(exposures):
        nsrc = len(e["catalog"])
        if nsrc < min_matches:
            results[i].update(status="FAILED", reason=f"{nsrc} sources, at least {min_matches} needed")
        else:
            usable.append(i)

    current = {i: exposures[i]["wcs"] for i in usable}
    relative_ok = False
    if len(usable) >= 2:
        match = XYXYMatch(searchrad=searchrad, separation=separation, use2dhist=use2dhist,
                          tolerance=tolerance)
        correctors = [
            _corrector(exposures[i]["wcs"], exposures[i]["wcsinfo"], exposures[i]["catalog"],
                       exposures[i].get("name", str(i)))
            for i in usable
        ]
        try:
            _run_tweakwcs(correctors, None, fitgeom, min_matches, match, nclip, sigma)
            failures = []
            for i, corr in zip(usable, correctors):
                status, info = _status(corr)
                if status == "SUCCESS":
                    results[i]["relative"] = _fit_summary(info)
                    current[i] = _with_extent(corr.wcs, exposures[i]["wcs"])
                elif status == "REFERENCE":
                    results[i]["relative"] = {"fitgeom": fitgeom, "reference": True}
                else:
                    failures.append((i, status))
            relative_ok = not failures
            for i, status in failures:
                results[i]["reason"] = f"relative alignment: {status}"
        except Exception as err:  # tweakwcs raises for degenerate inputs: report, do not crash
            for i in usable:
                results[i]["reason"] = f"relative alignment: {type(err).__name__}: {err}"
        if not relative_ok:
            current = {i: exposures[i]["wcs"] for i in usable}
            for i in usable:
                results[i]["relative"] = None
        else:
            for i in usable:
                results[i].update(status="SUCCESS", wcs=current[i])

    if refcat is None:
        for i in usable:
            if len(usable) < 2:
                results[i].update(status="SKIPPED", reason="single exposure and no reference catalog")
            elif not relative_ok:
                results[i]["status"] = "FAILED"
        return results

    try:
        reference, note = reference_at_epoch(refcat, epoch)
    except KeyError as err:
        for i in usable:
            results[i].update(status="FAILED", wcs=exposures[i]["wcs"], relative=None,
                              reason=f"reference catalog: {err}")
        return results
    for r in results:
        r["refcat_note"] = note
    if len(reference) < min_matches:
        for i in usable:
            results[i].update(status="FAILED", wcs=exposures[i]["wcs"],
                              reason=f"reference catalog has {len(reference)} sources in use, "
                                     f"at least {min_matches} needed")
        return results

    # After a good relative alignment the exposures move together, as one group.
    groups = [usable] if relative_ok else [[i] for i in usable]
    match = XYXYMatch(searchrad=abs_searchrad, separation=separation, use2dhist=use2dhist,
                      tolerance=abs_tolerance)
    for group in groups:
        correctors = [
            _corrector(current[i], exposures[i]["wcsinfo"], exposures[i]["catalog"],
                       exposures[i].get("name", str(i)), group_id=0 if len(group) > 1 else None)
            for i in group
        ]
        try:
            _run_tweakwcs(correctors, reference, abs_fitgeom, min_matches, match, nclip, sigma)
            outcome = [_status(c) for c in correctors]
        except Exception as err:
            outcome = [(f"FAILED: {type(err).__name__}: {err}", {})] * len(group)
        for i, corr, (status, info) in zip(group, correctors, outcome):
            if status == "SUCCESS" and int(info.get("nmatches", 0)) >= min_matches:
                results[i].update(status="SUCCESS", wcs=_with_extent(corr.wcs, exposures[i]["wcs"]), absolute=_fit_summary(info), reason="")
            else:
                reason = status.removeprefix("FAILED: ") if status.startswith("FAILED") else status
                if status == "SUCCESS":
                    reason = f"{info.get('nmatches', 0)} matches, at least {min_matches} needed"
                # Too few matches: the WCS is left as it came in.
                results[i].update(status="FAILED", wcs=exposures[i]["wcs"], relative=None,
                                  reason=f"absolute alignment: {reason}")
    return results


def wcs_offset(original, corrected, x, y, dy=50.0):
    """How ``corrected`` moved the sky at science pixel (x, y) relative to ``original``.

    Returns ``(dra_arcsec, ddec_arcsec, rotation_arcsec)``: the sky offset (dra includes
    cos Dec) and the change of position angle of the image's +y direction (east of north).
    """
    ra0, dec0 = original(x, y, with_bounding_box=False)
    ra1, dec1 = corrected(x, y, with_bounding_box=False)
    up0 = original(x, y + dy, with_bounding_box=False)
    up1 = corrected(x, y + dy, with_bounding_box=False)
    p0 = SkyCoord(ra0 * u.deg, dec0 * u.deg)
    p1 = SkyCoord(ra1 * u.deg, dec1 * u.deg)
    dra, ddec = p0.spherical_offsets_to(p1)
    pa0 = p0.position_angle(SkyCoord(up0[0] * u.deg, up0[1] * u.deg))
    pa1 = p1.position_angle(SkyCoord(up1[0] * u.deg, up1[1] * u.deg))
    rot = ((pa1 - pa0).wrap_at(180 * u.deg)).to(u.arcsec).value
    return float(dra.to(u.arcsec).value), float(ddec.to(u.arcsec).value), float(rot)


def select_sources(catalog, exclude_flags, min_snr, max_sources):
    """The catalog sources fit to align on: windowed centroids (``x``, ``y``) of the brightest
    ``max_sources`` with none of ``exclude_flags`` set and a Kron S/N of at least ``min_snr``."""
    if len(catalog) == 0:
        return Table({"x": np.zeros(0), "y": np.zeros(0)})
    x = np.asarray(catalog["x_centroid_win"], float)
    y = np.asarray(catalog["y_centroid_win"], float)
    flux = np.asarray(catalog["kron_flux"], float)
    err = np.asarray(catalog["kron_flux_err"], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(err > 0, flux / err, 0.0)
    keep = ((np.asarray(catalog["flags"]) & exclude_flags) == 0) & np.isfinite(x) & np.isfinite(y) & (snr >= min_snr)
    order = np.argsort(-flux[keep], kind="stable")[:max_sources]
    return Table({"x": x[keep][order], "y": y[keep][order]})


def sky_positions(wcs, x, y):
    """RA in [0, 360) and Dec (deg) of science pixels through ``wcs`` (no bounding box)."""
    ra, dec = wcs(np.asarray(x, float), np.asarray(y, float), with_bounding_box=False)
    return np.mod(np.asarray(ra, float), 360.0), np.asarray(dec, float)
