"""Synthetic products for the archive tests: small calibrated images with full metadata."""

import copy
from pathlib import Path

import numpy as np
from support.tiny_data import exposure_meta

from calpipe import datamodels as dm


def write_cal(folder, root, *, detector="WFI01", optical_element="F158", start="2027-06-01T00:00:00.000",
              program=1, ref_file=None, extra_exposure=None, seed=0, calpipe_version="0.1.0"):
    """A 16x16 ``<root>_cal.asdf`` with the metadata a pipeline product carries; returns its path."""
    meta = exposure_meta(start_time=start)
    meta["instrument"].update(detector=detector, optical_element=optical_element)
    meta["observation"]["program"] = program
    meta["exposure"].update(extra_exposure or {})
    meta["ref_file"] = dict(ref_file or {})
    meta["cal_step"] = {"ramp_fit": "COMPLETE", "flat_field": "COMPLETE"}
    meta["resources"] = {"ramp_fit": {"wall_seconds": 0.5, "peak_rss_mb": 100.0}}
    meta["provenance"] = {"calpipe_version": calpipe_version, "dependencies": {"numpy": np.__version__},
                          "parameters": {"ref_select": "before", "steps": {}}, "inputs": {}}
    rng = np.random.default_rng(seed)
    data = rng.normal(1.0, 0.1, (16, 16)).astype(np.float32)
    zeros = np.zeros((16, 16), np.float32)
    model = dm.ImageModel(meta=copy.deepcopy(meta), data=data, dq=np.zeros((16, 16), np.uint32),
                          err=zeros + 0.1, var_poisson=zeros, var_rnoise=zeros)
    folder.mkdir(parents=True, exist_ok=True)
    return Path(model.save(folder / f"{root}_cal.asdf"))
