"""Small hand-built exposures and reference stores with known answers, shared by the tests."""

import numpy as np

from calpipe import datamodels as dm

EXPOSURE_META = {
    "telescope": "ROMAN",
    "instrument": {"name": "WFI", "detector": "WFI01", "optical_element": "F158"},
    "exposure": {
        "type": "WFI_IMAGE",
        "start_time": "2027-06-01T00:00:00.000",
        "nresultants": 3,
        "read_pattern": [[1], [2, 3], [4]],
        "frame_time": 3.04,
    },
    "observation": {"program": 1, "observation": 1, "visit": 1, "exposure": 1},
}


def exposure_meta(**exposure):
    import copy

    meta = copy.deepcopy(EXPOSURE_META)
    meta["exposure"].update(exposure)
    return meta


def ref_meta(reftype, useafter="2020-01-01T00:00:00", **instrument):
    return {
        "reftype": reftype,
        "instrument": {"name": "WFI", "detector": "WFI01", **instrument},
        "useafter": useafter,
        "description": f"test {reftype}",
        "author": "tests",
        "pedigree": "DUMMY",
    }




# -- a tiny hand-built exposure and store, noiseless, with known answers ----------------------
N = 64  # detector size, 4-pixel reference border included
PEDESTAL = 1000.0
DARK_RATE = 0.25  # DN/s
DEAD = (10, 12)  # detector coordinates of special pixels
NAN_FLAT = (20, 30)
HALF_FLAT = (21, 31)
BAD_LIN = (30, 40)


def tiny_rate():
    """True linear count rate (DN/s, dark included) per detector pixel; 0 on the border."""
    y, x = np.mgrid[0:N, 0:N]
    rate = 5.0 + x + 2.0 * y  # integer counts at every read: exact raw values
    rate[:4], rate[-4:], rate[:, :4], rate[:, -4:] = 0, 0, 0, 0
    return rate


def write_tiny_store(folder):
    from calpipe import dqflags
    from calpipe.references import RefStore

    folder.mkdir(parents=True, exist_ok=True)
    border = np.zeros((N, N), bool)
    border[:4], border[-4:], border[:, :4], border[:, -4:] = True, True, True, True
    mask = np.where(border, dqflags.REFERENCE_PIXEL, 0).astype(np.uint32)
    mask[DEAD] = dqflags.DEAD | dqflags.DO_NOT_USE
    zeros_dq = np.zeros((N, N), np.uint32)
    coeffs = np.zeros((3, N, N), np.float32)
    coeffs[1] = 1.0
    coeffs[:, BAD_LIN[0], BAD_LIN[1]] = np.nan
    flat = np.ones((N, N), np.float32)
    flat[NAN_FLAT] = np.nan
    flat[HALF_FLAT] = 0.5
    dark = np.where(border, 0, DARK_RATE).astype(np.float32)
    models = {
        "mask": dm.MaskRefModel(meta=ref_meta("mask"), dq=mask),
        "saturation": dm.SaturationRefModel(
            meta=ref_meta("saturation"), data=np.full((N, N), 60000, np.float32), dq=zeros_dq
        ),
        "linearity": dm.LinearityRefModel(meta=ref_meta("linearity"), coeffs=coeffs, dq=zeros_dq),
        "dark": dm.DarkRefModel(meta={**ref_meta("dark"), "temperature": 90.0}, data=dark, dq=zeros_dq),
        "gain": dm.GainRefModel(meta=ref_meta("gain"), data=np.full((N, N), 2.0, np.float32)),
        "readnoise": dm.ReadnoiseRefModel(meta=ref_meta("readnoise"), data=np.full((N, N), 5.0, np.float32)),
        "flat": dm.FlatRefModel(
            meta=ref_meta("flat", optical_element="F158"), data=flat,
            err=np.full((N, N), 0.01, np.float32), dq=zeros_dq,
        ),
        "photom": dm.PhotomRefModel(
            meta=ref_meta("photom", optical_element="F158"),
            phot_table={"F158": {"photmjsr": 0.5, "uncertainty": 0.01, "pixelareasr": 2.8e-13}},
        ),
    }
    paths = [m.save(folder / f"tiny_{name}.asdf") for name, m in models.items()]
    RefStore(folder).add(paths)
    return folder


def write_tiny_exposure(path, rate=None, pattern=((1,), (2, 4), (5, 6, 7), (8,))):
    pattern = [list(r) for r in pattern]
    frame_time = 1.0
    rate = tiny_rate() if rate is None else rate
    resultants = np.stack([PEDESTAL + rate * frame_time * np.mean(reads) for reads in pattern])
    meta = exposure_meta(nresultants=len(pattern), read_pattern=pattern, frame_time=frame_time)
    meta["instrument"]["detector_temperature"] = 90.0
    raw = dm.RawModel(meta=meta, data=np.clip(np.round(resultants), 0, 65535).astype(np.uint16))
    return raw.save(path)


def write_tiny_association(folder, members, name="set"):
    """``<folder>/<name>_asn.json`` listing ``members`` (paths relative to ``folder``) as science."""
    import json

    path = folder / f"{name}_asn.json"
    path.write_text(json.dumps({
        "asn_id": "a1", "asn_pool": "pool", "asn_type": "image", "asn_rule": "test", "program": "00001",
        "target": "1", "code_version": "0", "products": [{"name": name, "members": [
            {"expname": m, "exptype": "science"} for m in members]}]}))
    return path
