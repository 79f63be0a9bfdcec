"""How a calibrated image compares with the simulator's truth."""

import numpy as np

from calpipe.datamodels import dqflags

# Pixels whose flags say the calibrated value is not a plain measurement.
EXCLUDE = (
    dqflags.DO_NOT_USE | dqflags.SATURATED | dqflags.JUMP_DET | dqflags.NO_LIN_CORR
    | dqflags.NO_FLAT_FIELD | dqflags.NO_GAIN_VALUE | dqflags.DEAD | dqflags.HOT
    | dqflags.UNRELIABLE_DARK
)


def robust_std(values):
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def compare(cal, truth):
    """Statistics of ``(cal.data - truth.flux) / cal.err`` and of jump and saturation flags.

    ``cal`` is an ImageModel, ``truth`` the simulator's truth tree (a mapping).
    """
    data, err, dq = np.asarray(cal.data), np.asarray(cal.err), np.asarray(cal.dq)
    flux = np.asarray(truth["flux"])
    jumps = np.asarray(truth["jumps"])
    saturated = np.asarray(truth["saturated"]).astype(bool)
    clean = (jumps == 0) & ~saturated & ((dq & EXCLUDE) == 0) & (err > 0)
    pull = (data[clean] - flux[clean]) / err[clean]
    hit = (jumps > 0) & ~saturated & ((dq & (EXCLUDE & ~dqflags.JUMP_DET)) == 0) & (err > 0)
    hit_pull = np.abs(data[hit] - flux[hit]) / err[hit]
    return {
        "clean_pixels": int(clean.sum()),
        "median_pull": float(np.median(pull)) if pull.size else float("nan"),
        "robust_std_pull": robust_std(pull) if pull.size else float("nan"),
        "saturated_pixels": int(saturated.sum()),
        "saturated_flagged": float(np.mean(dq[saturated] & dqflags.SATURATED > 0)) if saturated.any() else 1.0,
        "jump_pixels": int(hit.sum()),
        "jumps_flagged": float(np.mean(dq[hit] & dqflags.JUMP_DET > 0)) if hit.any() else 1.0,
        "jump_pixels_within_5_sigma": float(np.mean(hit_pull < 5)) if hit.any() else 1.0,
    }
