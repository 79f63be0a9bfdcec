"""Write a simulated exposure, its truth and a matching reference set to disk."""

import os
from dataclasses import dataclass, field
from pathlib import Path

import asdf
import numpy as np

from calpipe.datamodels import dqflags

from .exposure import FRAME_TIME, linearity_coefficients, make_detector, make_scene, simulate_exposure

USEAFTER = "2020-01-01T00:00:00.000"
START_TIME = "2027-06-01T00:00:00.000"
AUTHOR = "calpipe simulator"
PEDIGREE = "DUMMY"
# 0.11 arcsec pixels
PIXEL_AREA_SR = (0.11 / 206264.806) ** 2
# MJy/sr per DN/s for a 26.5 AB zero point (1 e/s) at a gain of 2 e/DN
PHOTMJSR = {"F158": 0.64}


@dataclass
class SimResult:
    """Paths written by :func:`simulate`: ``uncal``, ``truth``, ``refs`` (the store folder)."""

    uncal: Path
    truth: Path
    refs: Path
    root: str
    ref_files: dict = field(default_factory=dict)


def exposure_root(program=1, observation=1, visit=1, exposure=1, detector="WFI01"):
    """File-name root, e.g. ``cp00001001001_0001_wfi01``."""
    return f"cp{program:05d}{observation:03d}{visit:03d}_{exposure:04d}_{detector}".lower()


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


def write_references(detector, refs_dir, detector_name="WFI01", optical_element="F158", progress=None):
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
        "bias": {"channel": truth["bias_channel"], "row": truth["bias_row"]},
        "sources": Table({"x": sources["x"], "y": sources["y"], "flux": sources["flux"]}),
    }
    tmp = Path(path).with_name(f".{Path(path).name}.part")
    try:
        asdf.AsdfFile(tree).write_to(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def simulate(
    out_dir,
    *,
    size=4096,
    nresultants=6,
    seed=0,
    fully_saturated=False,
    read_pattern=None,
    frame_time=FRAME_TIME,
    progress=None,
    detector_seed=0,
    program=1,
    observation=1,
    visit=1,
    exposure=1,
    detector="WFI01",
    optical_element="F158",
    start_time=START_TIME,
):
    """Simulate one exposure; write ``<root>_uncal.asdf``, ``<root>_truth.asdf`` and ``refs/``.

    ``seed`` drives the sky, photon, read, cosmic-ray and bias draws; ``detector_seed``
    the detector's own properties, so that exposures with different seeds share one
    detector and one reference set. The references are registered in the store at
    ``out_dir/refs``.
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
    nsci = size - 2 * det.border
    flux, sources = make_scene((nsci, nsci), seed=seed)
    progress("ramp")
    exp = simulate_exposure(
        det, flux, read_pattern=read_pattern, nresultants=nresultants, frame_time=frame_time,
        seed=seed, fully_saturated=fully_saturated, progress=progress,
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
    }
    uncal = out_dir / f"{root}_uncal.asdf"
    dm.RawModel(meta=meta, data=exp.raw).save(uncal)
    progress(f"wrote {uncal.name}")
    exp.raw = None

    truth_path = out_dir / f"{root}_truth.asdf"
    truth_meta = {
        "root": root, "size": int(size), "seed": int(seed), "detector_seed": int(detector_seed),
        "fully_saturated": bool(fully_saturated), "border": det.border, "nchannels": det.nchannels,
        "units": {"slope": "DN/s", "flux": "DN/s", "dark": "DN/s", "bias": "DN",
                  "sources": "x, y in science-pixel coordinates (first science pixel centre at 0, 0); flux DN/s"},
    }
    _write_truth(truth_path, exp, sources, truth_meta)
    progress(f"wrote {truth_path.name}")
    del exp

    refs_dir = out_dir / "refs"
    ref_files = write_references(det, refs_dir, detector, optical_element, progress)
    RefStore(refs_dir).add(list(ref_files.values()))
    progress(f"registered {len(ref_files)} references in {refs_dir}")
    return SimResult(uncal=uncal, truth=truth_path, refs=refs_dir, root=root, ref_files=ref_files)
