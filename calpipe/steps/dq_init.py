"""dq_init: raw exposure -> ramp, with the bad-pixel mask as the starting pixel DQ."""

import numpy as np

from calpipe import datamodels
from calpipe.datamodels import RampModel, RawModel
from calpipe.errors import InputError
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

        data = np.empty(shape, dtype=np.float32)
        for i in range(shape[0]):  # one resultant at a time keeps the raw file mapped, not copied
            data[i] = raw.data[i]
        meta = dict(raw.meta.to_dict(), model_type="RampModel")
        ramp = RampModel(
            meta=meta,
            data=data,
            groupdq=np.zeros(shape, dtype=np.uint8),
            pixeldq=np.asarray(mask.dq, dtype=np.uint32).copy(),
        )
        mask.close()
        if raw is not input:
            raw.close()
        return ramp
