"""dark_current as a step: the dark rate (scaled by temperature when asked) is subtracted;
an override reference wins over the store."""

import numpy as np
import pytest
from support.tiny_data import DARK_RATE

from calpipe import datamodels as dm
from calpipe.steps import DarkCurrentStep, DQInitStep, RampFitStep, SaturationStep


def test_subtracts_the_dark_rate(tiny):
    image = RampFitStep.call(DQInitStep.call(tiny[0]))
    before = image.data.copy()
    result = DarkCurrentStep.call(image)
    np.testing.assert_allclose(result.data, before - DARK_RATE, rtol=0, atol=1e-4)
    assert result.meta.cal_step.dark_current == "COMPLETE"


def test_override_reference_wins(tiny, tmp_path):
    uncal, store = tiny
    with dm.open(store / "tiny_dark.asdf") as dark:
        dark.data = dark.data * 3
        other = dark.save(tmp_path / "other_dark.asdf")
    image = RampFitStep.call(SaturationStep.call(DQInitStep.call(uncal)))
    result = DarkCurrentStep.call(image, override_dark=str(other))
    assert result.meta.ref_file.dark == str(other)


def test_temperature_scaling_of_the_dark(tiny):
    uncal, _ = tiny
    image = RampFitStep.call(SaturationStep.call(DQInitStep.call(uncal)))
    before = image.data.copy()
    image.meta.instrument.detector_temperature = 96.0  # one interval warmer: twice the dark
    result = DarkCurrentStep.call(image, scale_temperature=True, scale_factor=2.0, scale_interval=6.0)
    assert result.meta.dark_current.scale == pytest.approx(2.0)
    np.testing.assert_allclose(result.data[10, 10], before[10, 10] - 2 * DARK_RATE, rtol=1e-6)
