"""Write a simulated exposure, its truth and a matching reference set to disk."""

from dataclasses import dataclass, field
from pathlib import Path

import asdf
import numpy as np

from calpipe import dqflags
from calpipe.atomic import atomic_path
from calpipe.detector import PIXEL_AREA_SR

from . import sky
from .exposure import FRAME_TIME, linearity_coefficients, make_detector, make_scene, simulate_exposure

USEAFTER = "2020-01-01T00:00:00.000"
START_TIME = "2027-06-01T00:00:00.000"
AUTHOR = "calpipe simulator"
PEDIGREE = "DUMMY"
# MJy/sr per DN/s for a 26.5 AB zero point (1 e/s) at a gain of 2 e/DN
PHOTMJSR = {"F158": 0.64}
# Where the simulated telescope points: a field near the south ecliptic pole.
POINTING = {"ra": 80.49, "dec": -69.5, "roll": 20.0}
# Separate random streams for the field's stars and catalog and for each pointing error.
_FIELD_STREAM, _POINTING_STREAM = 101, 102


@dataclass
class SimResult:
    """Paths written by :func:`simulate`: ``uncal``, ``truth``, ``refs`` (the store folder)."""

    uncal: Path
    truth: Path
    refs: Path
    root: str
    ref_files: dict = field(default_factory=dict)
    refcat: Path | None = None


@dataclass
class DitheredSet:
    """What :func:`simulate_dithered` wrote: one :class:`SimResult` per exposure, the
    association file, the field's reference catalog and the reference store."""

    exposures: list
    association: Path
    refcat: Path
    refs: Path


@dataclass
class SkyField:
    """A patch of sky shared by the exposures of a dithered set."""

    stars: object  # astropy Table from sky.field_catalog
    wcsinfo: dict  # true pointing of the first exposure
    distortion: object  # detector -> V2/V3 model
    refcat: object  # Gaia-like reference catalog (Table)


def make_field(size, seed, nexposures=1, star_density=1 / 4000.0, pointing=None):
    """The stars, pointing, distortion and reference catalog of a simulated field."""
    pointing = dict(POINTING, **(pointing or {}))
    rng = np.random.default_rng([seed, _FIELD_STREAM])
    distortion = sky.distortion_model(size=size)
    wcsinfo = sky.make_wcsinfo(pointing["ra"], pointing["dec"], pointing["roll"],
                               va_scale=sky.velocity_aberration_scale(30.0, 60.0))
    stars = sky.field_catalog(pointing["ra"], pointing["dec"], size, rng, nexposures=nexposures,
                              star_density=star_density)
    refcat = sky.reference_catalog(stars, rng, faint_limit=10.0)
    return SkyField(stars=stars, wcsinfo=wcsinfo, distortion=distortion, refcat=refcat)


def field_root(program=1, observation=1, visit=1):
    """Name root of a visit's shared files, e.g. ``cp00001001001`` (its reference catalog)."""
    return f"cp{program:05d}{observation:03d}{visit:03d}"


def exposure_root(program=1, observation=1, visit=1, exposure=1, detector="WFI01"):
    """File-name root, e.g. ``cp00001001001_0001_wfi01``."""
    return f"{field_root(program, observation, visit)}_{exposure:04d}_{detector}".lower()


def _ref_meta(reftype, detector_name, description, optical_element=None):
    instrument = {"name": "WFI", "detector": detector_name}
    if optical_element is not None:
        instrument["optical_element"] = optical_element
    return {
        "reftype": reftype,
        "instrument": instrument,
        "useafter": USEAFTER,
        "description": description,
        "author": AUTHOR,
        "pedigree": PEDIGREE,
    }


def write_references(detector, refs_dir, detector_name="WFI01", optical_element="F158", progress=None,
                     distortion=None):
    """Write the reference set describing ``detector`` into ``refs_dir``; return ``{reftype: path}``."""
    from calpipe import datamodels as dm

    progress = progress or (lambda message: None)
    refs_dir = Path(refs_dir)
    refs_dir.mkdir(parents=True, exist_ok=True)
    stem = f"calpipe_{detector_name.lower()}"
    paths = {}

    def save(reftype, model, element=None):
        name = f"{stem}_{element.lower()}_{reftype}.asdf" if element else f"{stem}_{reftype}.asdf"
        paths[reftype] = Path(model.save(refs_dir / name))
        progress(f"wrote {paths[reftype].name}")

    det = detector
    save("mask", dm.MaskRefModel(
        meta=_ref_meta("mask", detector_name, "Bad-pixel mask: reference border, dead and hot pixels"),
        dq=det.mask.copy()))

    pedestal = det.pedestal[det.channel_of_column()].astype(np.float32)
    threshold = (pedestal[None, :] + det.saturation_level).astype(np.float32)
    threshold[det.nan_threshold] = np.nan
    sat_dq = np.where(det.no_sat_check, np.uint32(dqflags.NO_SAT_CHECK), np.uint32(0)).astype(np.uint32)
    save("saturation", dm.SaturationRefModel(
        meta=_ref_meta("saturation", detector_name, "Saturation thresholds in raw DN, bias pedestal included"),
        data=threshold, dq=sat_dq))
    del threshold

    coeffs = linearity_coefficients(det)
    lin_dq = np.where(det.nan_linearity | det.zero_linearity, np.uint32(dqflags.NO_LIN_CORR), np.uint32(0))
    save("linearity", dm.LinearityRefModel(
        meta=_ref_meta("linearity", detector_name,
                       "Polynomial from measured (bias-removed) to linear counts, lowest power first"),
        coeffs=coeffs, dq=lin_dq.astype(np.uint32)))
    del coeffs

    dark_dq = np.where(det.mask & dqflags.HOT, np.uint32(dqflags.HOT), np.uint32(0)).astype(np.uint32)
    dark_meta = _ref_meta("dark", detector_name, "Dark-current rate in DN/s")
    dark_meta["temperature"] = float(det.temperature)
    save("dark", dm.DarkRefModel(meta=dark_meta, data=det.dark.copy(), dq=dark_dq))

    save("gain", dm.GainRefModel(meta=_ref_meta("gain", detector_name, "Gain in e/DN"), data=det.gain.copy()))
    save("readnoise", dm.ReadnoiseRefModel(
        meta=_ref_meta("readnoise", detector_name, "Read noise in DN per read"), data=det.readnoise.copy()))

    bad_flat = ~(det.flat > 0)
    flat_dq = np.where(bad_flat, np.uint32(dqflags.NO_FLAT_FIELD | dqflags.DO_NOT_USE), np.uint32(0))
    save("flat", dm.FlatRefModel(
        meta=_ref_meta("flat", detector_name, "Pixel-to-pixel and large-scale flat field", optical_element),
        data=det.flat.copy(), err=(0.002 * det.flat).astype(np.float32), dq=flat_dq.astype(np.uint32)),
        optical_element)

    phot = {optical_element: {"photmjsr": PHOTMJSR.get(optical_element, 0.64), "uncertainty": 0.01,
                              "pixelareasr": PIXEL_AREA_SR}}
    save("photom", dm.PhotomRefModel(
        meta=_ref_meta("photom", detector_name, "Conversion from DN/s to MJy/sr", optical_element),
        phot_table=phot), optical_element)

    if distortion is None:
        distortion = sky.distortion_model(size=detector.size)
    save("distortion", dm.DistortionRefModel(
        sky.distortion_reference_tree(detector_name, useafter=USEAFTER, transform=distortion)))
    return paths


def _write_truth(path, exposure, sources, meta):
    from astropy.table import Table

    truth = exposure.truth
    tree = {
        "meta": meta,
        "read_pattern": exposure.read_pattern,
        "frame_time": exposure.frame_time,
        "slope": truth["slope"],
        "flux": truth["flux"],
        "dark": truth["dark"],
        "flat": truth["flat"],
        "jumps": truth["jumps"],
        "saturated": truth["saturated"],
        "saturated_read": truth["saturated_read"],
        "cosmic_rays": Table(truth["cosmic_rays"]),
        "bias": {"channel": truth["bias_channel"], "row": truth["bias_row"]},
        "sources": Table(sources),
    }
    with atomic_path(path) as tmp:
        asdf.AsdfFile(tree).write_to(tmp)


def _field_sources(sky_field, wcsinfo, shape, start_time):
    """The field's stars that fall on the science pixels: x, y, ra, dec, flux, source_id."""
    epoch = sky.epoch_of(start_time)
    x, y, ra, dec = sky.star_pixels(sky_field.stars, wcsinfo, sky_field.distortion, shape, epoch)
    ny, nx = shape
    margin = 20  # stars just off the edge still spill light onto it
    near = (x > -margin) & (x < nx - 1 + margin) & (y > -margin) & (y < ny - 1 + margin)
    flux = np.asarray(sky_field.stars["flux"], float)
    rendered = {"x": x[near], "y": y[near], "flux": flux[near]}
    on = near & (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    table = {"x": x[on], "y": y[on], "ra": ra[on], "dec": dec[on], "flux": flux[on],
             "source_id": np.asarray(sky_field.stars["source_id"])[on]}
    return rendered, table


def simulate(
    out_dir,
    *,
    size=4096,
    nresultants=6,
    seed=0,
    fully_saturated=False,
    read_pattern=None,
    frame_time=FRAME_TIME,
    cosmic_ray_fraction=0.02,
    multi_hit_fraction=0.0,
    progress=None,
    detector_seed=0,
    program=1,
    observation=1,
    visit=1,
    exposure=1,
    detector="WFI01",
    optical_element="F158",
    start_time=START_TIME,
    sky_field=None,
    wcsinfo=None,
    pointing_error=(0.5, 0.05),
    star_density=1 / 4000.0,
    write_refs=True,
    read_signal=None,
):
    """Simulate one exposure; write ``<root>_uncal.asdf``, ``<root>_truth.asdf``, ``refs/``
    and the field's reference catalog ``<field>_refcat.ecsv``.

    ``seed`` drives the sky, photon, read, cosmic-ray, bias and pointing-error draws;
    ``detector_seed`` the detector's own properties, so that exposures with different seeds
    share one detector and one reference set. The stars come from ``sky_field`` (a
    :class:`SkyField`, made from ``seed`` when not given) seen through the true pointing
    ``wcsinfo`` (the field's own by default); the raw exposure's ``meta.wcsinfo`` is that
    pointing moved by ``pointing_error`` = (shift in arcsec, roll in degrees), and the truth
    keeps the true one. The references are registered in the store at ``out_dir/refs``
    unless ``write_refs`` is false. ``read_signal`` is passed to :func:`simulate_exposure`.
    """
    from calpipe import datamodels as dm
    from calpipe.references import RefStore

    progress = progress or (lambda message: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = exposure_root(program, observation, visit, exposure, detector)

    progress(f"detector {detector} {size}x{size}")
    det = make_detector(size, seed=detector_seed)
    progress("sky")
    if sky_field is None:
        sky_field = make_field(size, seed, star_density=star_density)
    true_wcsinfo = dict(wcsinfo or sky_field.wcsinfo)
    shift, roll = pointing_error
    _, written_wcsinfo, error = sky.inject_pointing_error(
        true_wcsinfo, np.random.default_rng([seed, _POINTING_STREAM]), shift, roll)
    nsci = size - 2 * det.border
    rendered, sources = _field_sources(sky_field, true_wcsinfo, (nsci, nsci), start_time)
    flux, _ = make_scene((nsci, nsci), seed=seed, sources=rendered)
    progress(f"{len(sources['x'])} stars on the detector")
    progress("ramp")
    exp = simulate_exposure(
        det, flux, read_pattern=read_pattern, nresultants=nresultants, frame_time=frame_time,
        seed=seed, fully_saturated=fully_saturated, cosmic_ray_fraction=cosmic_ray_fraction,
        multi_hit_fraction=multi_hit_fraction, progress=progress, read_signal=read_signal,
    )
    del flux

    pattern = exp.read_pattern
    meta = {
        "telescope": "ROMAN",
        "instrument": {"name": "WFI", "detector": detector, "optical_element": optical_element,
                       "detector_temperature": float(det.temperature)},
        "exposure": {"type": "WFI_IMAGE", "start_time": start_time, "nresultants": len(pattern),
                     "read_pattern": pattern, "frame_time": float(frame_time),
                     "exposure_time": float(frame_time * pattern[-1][-1])},
        "observation": {"program": int(program), "observation": int(observation), "visit": int(visit),
                        "exposure": int(exposure)},
        "target": {"name": "SIMULATED-FIELD", "ra": float(sky_field.wcsinfo["ra_ref"]),
                   "dec": float(sky_field.wcsinfo["dec_ref"])},
        "wcsinfo": written_wcsinfo,
    }
    uncal = out_dir / f"{root}_uncal.asdf"
    dm.RawModel(meta=meta, data=exp.raw).save(uncal)
    progress(f"wrote {uncal.name}")
    exp.raw = None

    truth_path = out_dir / f"{root}_truth.asdf"
    truth_meta = {
        "root": root, "size": int(size), "seed": int(seed), "detector_seed": int(detector_seed),
        "fully_saturated": bool(fully_saturated), "border": det.border, "nchannels": det.nchannels,
        "wcsinfo": true_wcsinfo, "pointing_error": error, "epoch": sky.epoch_of(start_time),
        "units": {"slope": "DN/s", "flux": "DN/s", "dark": "DN/s", "bias": "DN",
                  "sources": "x, y in science-pixel coordinates (first science pixel centre at 0, 0); "
                             "ra, dec in degrees at the exposure's epoch; flux DN/s",
                  "pointing_error": "written minus true: dra (with cos Dec) and ddec in arcsec, droll in deg"},
    }
    _write_truth(truth_path, exp, sources, truth_meta)
    progress(f"wrote {truth_path.name}")
    del exp

    refcat = out_dir / f"{field_root(program, observation, visit)}_refcat.ecsv"
    sky.write_reference_catalog(sky_field.refcat, refcat)
    refs_dir = out_dir / "refs"
    ref_files = {}
    if write_refs:
        ref_files = write_references(det, refs_dir, detector, optical_element, progress, sky_field.distortion)
        RefStore(refs_dir).add(list(ref_files.values()))
        progress(f"registered {len(ref_files)} references in {refs_dir}")
    return SimResult(uncal=uncal, truth=truth_path, refs=refs_dir, root=root, ref_files=ref_files,
                     refcat=refcat)


def simulate_dithered(out_dir, nexposures, *, size=4096, seed=0, start_time=START_TIME, progress=None,
                      star_density=1 / 4000.0, **options):
    """Simulate ``nexposures`` dithered exposures of one field and their association file.

    Exposure k (1-based) has seed ``seed + k - 1``, its own pointing error and a start time
    one minute after the previous exposure's end; all share the detector, the references
    and the reference catalog. ``options`` go to :func:`simulate`.
    """
    from astropy.time import Time, TimeDelta

    from calpipe.associations.pool import read_exposure, write_associations

    progress = progress or (lambda message: None)
    nexposures = int(nexposures)
    if nexposures < 1:
        raise ValueError(f"nexposures must be >= 1, got {nexposures}")
    sky_field = make_field(size, seed, nexposures=nexposures, star_density=star_density)
    pointings = sky.dithered_wcsinfos(sky_field.wcsinfo, sky_field.distortion, nexposures)
    start = Time(start_time, scale="utc")
    results = []
    for k, wcsinfo in enumerate(pointings):
        progress(f"exposure {k + 1}/{nexposures}")
        result = simulate(out_dir, size=size, seed=seed + k, exposure=k + 1, sky_field=sky_field,
                          wcsinfo=wcsinfo, start_time=start.isot, progress=progress,
                          write_refs=(k == 0), **options)
        results.append(result)
        with asdf.open(result.uncal, lazy_load=True) as af:
            duration = af.tree["meta"]["exposure"]["exposure_time"]
        start = start + TimeDelta(duration + 60.0, format="sec")
    (association,) = write_associations([read_exposure(r.uncal) for r in results], out_dir, "simulated")
    progress(f"wrote {Path(association).name}")
    return DitheredSet(exposures=results, association=Path(association), refcat=results[0].refcat,
                       refs=results[0].refs)
