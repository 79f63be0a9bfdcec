"""photom: record the conversion from DN/s to surface brightness (data stay in DN/s)."""

import logging
import math

from calpipe.step import CalStep

log = logging.getLogger(__name__)

STERADIAN_TO_ARCSEC2 = (180 / math.pi * 3600) ** 2


class PhotomStep(CalStep):
    """Write MJy/sr per DN/s and the pixel area for the exposure's optical element to meta.photometry."""

    class_alias = "photom"
    reference_file_types = ["photom"]

    def process(self, input):
        model = self.open_for_update(input)
        ref = self.open_reference(model, "photom")
        element = model.meta.instrument.optical_element.upper()
        row = {k.upper(): v for k, v in ref.phot_table.items()}.get(element)
        if row is None:
            log.warning("No photometric calibration for %s in %s", element, ref.meta.filename)
            row = {"photmjsr": None, "uncertainty": None, "pixelareasr": None}
        area = row.get("pixelareasr")
        model.meta.photometry = {
            "conversion_megajanskys": row.get("photmjsr"),
            "conversion_megajanskys_uncertainty": row.get("uncertainty"),
            "pixelarea_steradians": area,
            "pixelarea_arcsecsq": None if area is None else area * STERADIAN_TO_ARCSEC2,
        }
        ref.close()
        return model
