"""dq_init: raw exposure -> ramp, with the bad-pixel mask as the starting pixel DQ."""

import numpy as np

from calpipe import datamodels
from calpipe.datamodels import RampModel, RawModel
from calpipe.detector import BORDER
from calpipe.errors import InputError
from calpipe.kernels.threads import on_row_blocks
from calpipe.memory import releasable
from calpipe.step import CalStep

from ._common import check_shape


class DQInitStep(CalStep):
    """Convert the raw resultants to float32 DN and start the DQ arrays from the mask."""

    class_alias = "dq_init"
    reference_file_types = ["mask"]

    def process(self, input):
        raw = datamodels.open(input)
        if isinstance(raw, RampModel):
            return raw
        if not isinstance(raw, RawModel):
            raise InputError(f"{raw.meta.get('filename')}: dq_init needs a raw exposure, got {type(raw).__name__}")
        mask = self.open_reference(raw, "mask")
        shape = raw.data.shape
        check_shape(mask.dq, "dq", shape[1:], mask.meta.filename)

        # The cube and its group DQ are releasable: the ramp fit in a pipeline gives back
        # their memory as it goes. Converted a block of rows at a time on every thread (a
        # mapped raw file is read, not copied).
        data = releasable(shape, np.float32)

        def convert(rows):
            data[:, rows] = raw.data[:, rows]

        on_row_blocks(convert, shape[1], 128)
        groupdq = releasable(shape, np.uint8)
        if "groupdq" in raw:
            groupdq[...] = raw.groupdq
        meta = dict(raw.meta.to_dict(), model_type="RampModel")
        pixeldq = np.asarray(mask.dq, dtype=np.uint32).copy()
        if "pixeldq" in raw:  # flags the instrument set (a guide window)
            pixeldq |= raw.pixeldq
        ramp = RampModel(
            meta=meta,
            data=data,
            groupdq=groupdq,
            pixeldq=pixeldq,
        )
        if "amp33" in raw:
            ramp.amp33 = np.array(raw.amp33)
        ramp.reference_border = reference_border(data, pixeldq)
        mask.close()
        if raw is not input:
            raw.close()
        return ramp


def reference_border(data, pixeldq, border=BORDER):
    """The border reference pixels of every resultant as read, kept beside the science array."""
    b = border
    return {
        "left": data[:, :, :b].copy(), "right": data[:, :, -b:].copy(),
        "top": data[:, :b, :].copy(), "bottom": data[:, -b:, :].copy(),
        "dq_left": pixeldq[:, :b].copy(), "dq_right": pixeldq[:, -b:].copy(),
        "dq_top": pixeldq[:b, :].copy(), "dq_bottom": pixeldq[-b:, :].copy(),
    }
