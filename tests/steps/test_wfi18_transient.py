"""wfi18_transient: WFI18's first-read transient fitted and removed, rows flagged, other detectors skipped."""

import logging

import numpy as np
from support.tiny_data import exposure_meta

from calpipe import datamodels as dm
from calpipe import dqflags
from calpipe.kernels.dark_decay import pixel_read_times
from calpipe.kernels.wfi18_transient import double_exponential
from calpipe.steps import Wfi18TransientStep

FRAME_TIME = 3.04
PATTERN = [[1], [2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12], [13]]
TRANSIENT = (60.0, -6.0, 0.2, 0.7)
N = 256  # 248 science pixels and the border
FIRST_ROWS = 63  # read in the first 1000/4096 of the frame: rows 0-62


def ramp_model(detector="WFI18", pattern=PATTERN, transient=True):
    """Faint sky with read noise and a few stars; the transient in the first read. Returns the
    model and the truth (the same resultants without the transient)."""
    rng = np.random.default_rng(8)
    rate = rng.uniform(0.5, 2.0, (N, N))
    rate[rng.random((N, N)) < 0.01] = 500.0
    mean_times = np.array([np.mean(r) for r in pattern]) * FRAME_TIME
    truth = rate[None] * mean_times[:, None, None] + rng.normal(0, 5, (len(pattern), N, N))
    data = truth.copy()
    if transient:
        data[0] += double_exponential(pixel_read_times((N, N), FRAME_TIME, 18), *TRANSIENT)
    meta = exposure_meta(nresultants=len(pattern), read_pattern=pattern, frame_time=FRAME_TIME)
    meta["instrument"]["detector"] = detector
    model = dm.RampModel(meta=meta, data=data.astype(np.float32), groupdq=np.zeros(data.shape, np.uint8),
                         pixeldq=np.zeros((N, N), np.uint32))
    return model, truth.astype(np.float32)


def test_the_transient_is_fitted_and_removed_from_the_first_resultant():
    model, truth = ramp_model()
    out = Wfi18TransientStep.call(model)
    assert out.meta.cal_step.wfi18_transient == "COMPLETE"
    assert out.meta.wfi18_transient.method == "fit"
    sci = np.s_[4:-4, 4:-4]
    rows = (out.data[0][sci] - truth[0][sci]).mean(axis=1)  # transient up to 54 DN, row means
    assert np.abs(rows).max() < 1.0
    np.testing.assert_array_equal(out.data[1:], truth[1:])
    assert not out.groupdq.any()


def test_too_few_resultants_flag_the_rows_read_first():
    model, _ = ramp_model(pattern=PATTERN[:4])
    before = model.data.copy()
    out = Wfi18TransientStep.call(model)
    flagged = (out.groupdq[0] & dqflags.DO_NOT_USE).any(axis=1)
    assert flagged[:FIRST_ROWS].all() and not flagged[FIRST_ROWS:].any()
    assert not out.groupdq[1:].any()
    np.testing.assert_array_equal(out.data, before)
    assert out.meta.wfi18_transient.method == "flagged"


def test_mask_rows_flags_instead_of_fitting():
    model, _ = ramp_model()
    out = Wfi18TransientStep.call(model, mask_rows=True)
    assert out.meta.wfi18_transient.rows == FIRST_ROWS and out.groupdq[0, 0].all()


def test_other_detectors_are_skipped_with_the_reason(caplog):
    model, _ = ramp_model(detector="WFI01")
    before = model.data.copy()
    with caplog.at_level(logging.INFO, logger="calpipe"):
        logging.getLogger("calpipe").propagate = True
        out = Wfi18TransientStep.call(model)
    assert out.meta.cal_step.wfi18_transient == "SKIPPED"
    assert any("wfi18_transient skipped: detector WFI01" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(out.data, before)
