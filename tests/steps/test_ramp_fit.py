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
