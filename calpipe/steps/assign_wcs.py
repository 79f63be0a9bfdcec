"""assign_wcs: attach the gwcs (science pixels -> V2/V3 -> aberration -> ICRS) and s_region."""

import logging

from calpipe import datamodels
from calpipe.kernels.wcs import WCSINFO_KEYS, build_wcs, s_region
from calpipe.step import CalStep

log = logging.getLogger(__name__)


class AssignWcsStep(CalStep):
    """Build the exposure's WCS from the distortion reference and ``meta.wcsinfo``.

    The gwcs goes to ``meta.wcs``; the footprint to ``meta.wcsinfo.s_region``. An exposure
    without a complete ``meta.wcsinfo`` is left without a WCS and marked SKIPPED.
    """

    class_alias = "assign_wcs"
    reference_file_types = ["distortion"]

    def process(self, input):
        model = datamodels.open(input)
        wcsinfo = model.meta.get("wcsinfo")
        wcsinfo = wcsinfo.to_dict() if wcsinfo else {}
        missing = [k for k in WCSINFO_KEYS if wcsinfo.get(k) is None]
        if missing:
            log.warning("No pointing for %s (meta.wcsinfo lacks %s): no WCS assigned",
                             model.meta.get("filename"), ", ".join(missing))
            self.record(model, "SKIPPED")
            return model
        ref = self.open_reference(model, "distortion")
        wcs = build_wcs(ref.coordinate_distortion_transform, wcsinfo, model.data.shape)
        ref.close()
        model.meta.wcs = wcs
        model.meta.wcsinfo.s_region = s_region(wcs)
        log.info("WCS assigned: reference point RA %.6f Dec %.6f, roll %.4f deg",
                      wcsinfo["ra_ref"], wcsinfo["dec_ref"], wcsinfo["roll_ref"])
        return model
