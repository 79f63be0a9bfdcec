"""ramp_fit step: what it records about the fit in meta.ramp_fit."""

import logging

import numpy as np
from support.tiny_data import write_tiny_exposure

from calpipe import datamodels as dm
from calpipe.pipelines import ExposurePipeline


def test_fallback_to_optimal_is_recorded_and_logged(tiny, tmp_path, caplog):
    _, _ = tiny
    uncal = write_tiny_exposure(tmp_path / "three_uncal.asdf", pattern=((1,), (2, 4), (5, 6, 7)))
    with caplog.at_level(logging.INFO, logger="calpipe.steps.ramp_fit"):
        ExposurePipeline.call(str(uncal), output_dir=str(tmp_path / "out"), save_results=True)
    with dm.open(tmp_path / "out" / "three_cal.asdf") as model:
        info = model.meta.ramp_fit.to_dict()
        npix = model.data.size
        assert np.count_nonzero(model.dq & dm.dqflags.JUMP_DET) == info["pixels"]["jump"]
    assert info["algorithm"] == "optimal" and info["algorithm_requested"] == "likely"
    assert info["pixels"]["optimal"] == npix and info["pixels"]["likely"] == 0
    assert info["pixels"]["unreliable"] == 0
    assert "fitted with 'optimal'" in caplog.text


def test_likely_records_its_pixels(tiny, tmp_path):
    uncal, _ = tiny
    ExposurePipeline.call(str(uncal), output_dir=str(tmp_path / "out"), save_results=True)
    with dm.open(next((tmp_path / "out").glob("*_cal.asdf"))) as model:
        info = model.meta.ramp_fit
        assert info.algorithm == info.algorithm_requested == "likely"
        assert info.pixels.likely == model.data.size and info.pixels.optimal == 0


def test_a_pipeline_s_fit_gives_back_the_ramp_and_fits_the_same(tiny):
    from calpipe.memory import RELEASES
    from calpipe.steps import DQInitStep, RampFitStep

    uncal, _ = tiny
    kept, consumed = DQInitStep.call(uncal), DQInitStep.call(uncal)
    step = RampFitStep()
    step.release_input = True  # as ExposurePipeline sets it
    released = step.run(consumed)
    plain = RampFitStep.call(kept)
    for name in ("data", "err", "var_poisson", "var_rnoise", "dq"):
        np.testing.assert_array_equal(getattr(released, name), getattr(plain, name))
    assert kept.data[:, 16:48].all()
    # the whole pages of the fitted rows (a 64-pixel row is a quarter page): rows 16 to 47
    assert (consumed.data[:, 16:48] == 0).all() == RELEASES
    assert (consumed.data[:, :4] == kept.data[:, :4]).all()  # the border rows stay


def test_exposure_pipeline_lets_its_fit_give_back_the_ramp(tiny, tmp_path, monkeypatch):
    import calpipe.steps.ramp_fit as ramp_fit

    released = []
    monkeypatch.setattr(ramp_fit, "release_rows", lambda cube, r0, r1: released.append((cube.dtype, r0, r1)))
    ExposurePipeline.call(str(tiny[0]), output_dir=str(tmp_path / "out"), save_results=True)
    # the tiny exposure's 56 science rows are one block: the cube's and the group DQ's
    assert released == [(np.float32, 4, 60), (np.uint8, 4, 60)]
    assert ramp_fit.RampFitStep().release_input is False  # a step on its own keeps its input
