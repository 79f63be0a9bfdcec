"""ExposurePipeline: raw up-the-ramp exposures in, calibrated count-rate images out."""

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from calpipe import compile_notice, datamodels
from calpipe.archive.checksums import file_checksum
from calpipe.datamodels import ImageModel
from calpipe.detector import science
from calpipe.errors import InputError
from calpipe.kernels.saturation import fully_saturated, saturated_pixel_dq
from calpipe.step import CalPipeline
from calpipe.steps import (
    AssignWcsStep,
    DarkCurrentStep,
    DarkDecayStep,
    DQInitStep,
    FlatFieldStep,
    LinearityStep,
    PhotomStep,
    RampFitStep,
    RefPixStep,
    SaturationStep,
    SourceCatalogStep,
    TweakRegStep,
    Wfi18TransientStep,
)

log = logging.getLogger(__name__)

AFTER_SATURATION = ["refpix", "dark_decay", "wfi18_transient", "linearity", "ramp_fit", "dark_current",
                    "assign_wcs", "flat_field", "photom", "source_catalog"]


class ExposurePipeline(CalPipeline):
    """dq_init, saturation, refpix, dark_decay, wfi18_transient, linearity, ramp_fit, dark_current,
    assign_wcs, flat_field, photom and source_catalog on each exposure, then tweakreg over all of
    them together."""

    class_alias = "exposure_pipeline"
    spec = """
    suffix = string(default='cal')   # Suffix of the calibrated product
    """
    step_defs = {
        "dq_init": DQInitStep,
        "saturation": SaturationStep,
        "refpix": RefPixStep,
        "dark_decay": DarkDecayStep,
        "wfi18_transient": Wfi18TransientStep,
        "linearity": LinearityStep,
        "ramp_fit": RampFitStep,
        "dark_current": DarkCurrentStep,
        "assign_wcs": AssignWcsStep,
        "flat_field": FlatFieldStep,
        "photom": PhotomStep,
        "source_catalog": SourceCatalogStep,
        "tweakreg": TweakRegStep,
    }

    def process(self, input):
        if not self.ramp_fit.skip:
            # On a cold kernel cache (a first run), the ramp fit compiles in the background
            # while the steps before it run.
            compile_notice.compile_ahead("calpipe.precompile", self.ramp_fit.algorithm)
        data = datamodels.open(input)
        if hasattr(data, "borrow"):  # an association: calibrate each member in turn
            return self._process_library(data)
        image = self.calibrate(data, close_raw=data is not input)
        return self.tweakreg.run([image])[0]

    def _process_library(self, library):
        self.output_use_model = True
        for step in self.step_defs:
            getattr(self, step).output_use_model = True
        self.check_members(library.member_paths())
        images = []
        with library:
            for index, model in enumerate(library):
                images.append(self.calibrate(model, close_raw=True))
                library.shelve(model, index, modify=False)
        # Relative alignment uses every member's sources at once, so the calibrated members
        # stay in memory until then (about 320 MB each for a full detector).
        return self.tweakreg.run(images)

    def check_members(self, paths):
        """Before calibrating anything: every member opens whole, and no two would be written
        under the same product name."""
        products = {}
        for path in paths:
            datamodels.open(path).close()  # schema and block checksums
            root, _ = self.remove_suffix(os.path.splitext(os.path.basename(path))[0])
            if root in products:
                raise InputError(
                    f"association members {products[root]} and {path} would both be written as "
                    f"{root}_{self.suffix}{self.output_ext}: expected members with distinct names")
            products[root] = path

    def calibrate(self, raw, close_raw=False):
        """Run one exposure through every step; ``close_raw`` frees the raw file once converted."""
        log.info("Calibrating %s", raw.meta.get("filename"))
        path = raw._path
        # The input file's checksum is read while the steps run (hashing releases the GIL).
        with ThreadPoolExecutor(1) as pool:
            checksum = None if path is None else pool.submit(file_checksum, path)
            image = self._calibrate(raw, close_raw)
            self.record_provenance(image, path, None if checksum is None else checksum.result())
        return image

    def _calibrate(self, raw, close_raw):
        ramp = self.dq_init.run(raw)
        if close_raw and ramp is not raw:
            raw.close()  # its mapped pages would otherwise stay resident through the ramp fit
        ramp = self.saturation.run(ramp)
        if fully_saturated(ramp.groupdq, ramp.pixeldq):
            log.warning("Every resultant of every pixel is saturated: zero image, later steps skipped")
            image = saturated_image(ramp)
            for name in AFTER_SATURATION:
                setattr(image.meta.cal_step, getattr(self, name).class_alias, "SKIPPED")
            return image
        ramp = self.refpix.run(ramp)
        ramp = self.dark_decay.run(ramp)
        ramp = self.wfi18_transient.run(ramp)
        ramp = self.linearity.run(ramp)
        self.ramp_fit.release_input = True  # the ramp is not read after the fit
        image = self.ramp_fit.run(ramp)
        del ramp
        image = self.dark_current.run(image)
        image = self.assign_wcs.run(image)
        image = self.flat_field.run(image)
        image = self.photom.run(image)
        return self.source_catalog.run(image)


def saturated_image(ramp):
    """The product of a fully saturated exposure: zero data and variances, flags kept."""
    shape = science(ramp.pixeldq).shape
    zeros = lambda: np.zeros(shape, dtype=np.float32)  # noqa: E731
    dq = saturated_pixel_dq(science(ramp.pixeldq), science(ramp.groupdq[0]))
    return ImageModel(
        meta=dict(ramp.meta.to_dict(), model_type="ImageModel"),
        data=zeros(), dq=dq, err=zeros(), var_poisson=zeros(), var_rnoise=zeros(),
    )
