"""A small calpipe exposure with chosen metadata, for the pool tests."""

import asdf
import numpy as np


def write_cp(path, detector, **meta_extra):
    meta = {
        "instrument": {"name": "WFI", "detector": detector, "optical_element": "F158"},
        "exposure": {"type": "WFI_IMAGE", "start_time": "2027-01-01T00:00:00", "nresultants": 6,
                     "read_pattern": [[1], [2, 3]], "frame_time": 3.04},
        "observation": {"program": 7, "observation": 2, "visit": 1, "exposure": 1},
    }
    meta.update(meta_extra)
    asdf.AsdfFile({"meta": meta, "data": np.zeros((2, 4, 4), np.uint16)}).write_to(path)
    return path
