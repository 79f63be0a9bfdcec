"""ramp_fit: fit a count rate to every pixel's resultants, finding and splitting at jumps."""

import logging

import numpy as np

from calpipe import compile_notice, datamodels, dqflags
from calpipe.datamodels import ImageModel
from calpipe.detector import BORDER, science
from calpipe.errors import InputError
from calpipe.kernels.ramp import fit_ramps
from calpipe.kernels.ramp_likely import MIN_RESULTANTS
from calpipe.kernels.refpix import read_noise_with_refpix
from calpipe.memory import release_rows
from calpipe.step import CalStep

from ._common import check_shape

# Arrays of the ramp that the rate image keeps: the reference output and the border pixels.
CARRIED = ("amp33", "reference_border")

log = logging.getLogger(__name__)


class RampFitStep(CalStep):
    """Up-the-ramp fit with jump detection: RampModel in, rate ImageModel (science pixels) out."""

    class_alias = "ramp_fit"
    reference_file_types = ["readnoise", "gain"]
    spec = """
    algorithm = option('likely', 'optimal', default='likely')  # Likelihood fit (Brandt 2024) or optimal weighting (Casertano 2022)
    detect_jumps = boolean(default=True)    # Find cosmic-ray jumps and split ramps there
    jump_threshold = float(default=None)    # Jump significance threshold; None: the algorithm's default
    block_rows = integer(default=256, min=1)  # Rows of pixels fitted together (memory vs overhead)
    save_jumps = boolean(default=False)     # Keep the per-resultant jump flags in the output
    suffix = string(default='rate')         # Suffix of the saved rate image
    """

    release_input = False
    """Set by a pipeline that drops the ramp after the fit: the rows of a releasable cube
    (:mod:`calpipe.memory`) and of its group DQ are given back to the system as they are
    fitted, and read as zeros after."""

    def process(self, input):
        model = datamodels.open(input)  # read only: the fit writes new arrays
        if not isinstance(model, datamodels.RampModel):
            raise InputError(f"{model.meta.get('filename')}: ramp_fit needs a ramp, got {type(model).__name__}")
        readnoise = self.open_reference(model, "readnoise")
        gain = self.open_reference(model, "gain")
        detector_shape = model.data.shape[1:]
        for ref in (readnoise, gain):
            check_shape(ref.data, "data", detector_shape, ref.meta.filename)

        read_noise = readnoise.data
        refpix = model.tree.get("refpix_variance")
        if refpix is not None:  # the bias estimates' noise is read noise too
            read_noise = read_noise_with_refpix(read_noise, refpix["channel"], refpix["row"])
        # Science-pixel copies; the reference files' mapped pages and the full-frame read
        # noise are let go before the fit allocates its outputs (the step's peak memory).
        read_noise = science(read_noise).copy()
        gain_science = science(gain.data).copy()
        readnoise.close()
        gain.close()
        compile_notice.wait_ahead()  # a background compile of the fit's kernel, if any

        def release(r0, r1):
            for cube in (model.data, model.groupdq):
                release_rows(cube, r0 + BORDER, r1 + BORDER)

        fit = fit_ramps(
            science(model.data),
            science(model.groupdq),
            read_noise,
            gain_science,
            model.meta.exposure.read_pattern,
            model.meta.exposure.frame_time,
            algorithm=self.algorithm,
            detect_jumps=self.detect_jumps,
            jump_threshold=self.jump_threshold,
            block_rows=self.block_rows,
            return_jumps=self.save_jumps,
            rows_done=release if self.release_input else None,
        )
        jump_pixels = int(np.count_nonzero(fit.dq & dqflags.JUMP_DET))
        unreliable_pixels = int(np.count_nonzero(fit.dq & dqflags.UNRELIABLE_SLOPE))
        np.bitwise_or(fit.dq, science(model.pixeldq), out=fit.dq)  # in place: no fifth frame at the peak
        image = ImageModel(
            meta=dict(model.meta.to_dict(), model_type="ImageModel"),
            data=fit.slope,
            dq=fit.dq,
            err=fit.err,
            var_poisson=fit.var_poisson,
            var_rnoise=fit.var_rnoise,
        )
        for name in CARRIED:
            if name in model:  # read now: the ramp's file closes before the image is saved
                value = model.tree[name]
                image.tree[name] = ({k: np.array(v) for k, v in value.items()} if isinstance(value, dict)
                                    else np.array(value))
        if fit.jumps is not None:
            image.jumps = fit.jumps
        if fit.algorithm != self.algorithm:
            log.info("ramp_fit: algorithm %r needs at least %d resultants, the exposure has %d: "
                     "fitted with %r", self.algorithm, MIN_RESULTANTS, model.data.shape[0],
                     fit.algorithm)
        npix = int(fit.dq.size)
        image.meta.ramp_fit = {
            "algorithm": fit.algorithm,
            "algorithm_requested": self.algorithm,
            "detect_jumps": self.detect_jumps,
            "pixels": {
                "likely": npix if fit.algorithm == "likely" else 0,
                "optimal": npix if fit.algorithm == "optimal" else 0,
                "jump": jump_pixels,
                "unreliable": unreliable_pixels,
            },
        }
        return image
