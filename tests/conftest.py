"""Shared fixtures: small hand-built exposures and reference stores."""

import numpy as np
import pytest

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


@pytest.fixture
def raw_model():
    data = np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16)
    return dm.RawModel(meta=exposure_meta(), data=data)
