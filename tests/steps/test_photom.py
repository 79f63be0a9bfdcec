"""photom as a step: the conversion of the exposure's optical element is recorded; the pixels
are left in DN/s."""

import numpy as np
import pytest

from calpipe.steps import DQInitStep, PhotomStep, RampFitStep


def test_records_the_conversion_of_the_optical_element(tiny):
    image = RampFitStep.call(DQInitStep.call(tiny[0]))
    before = image.data.copy()
    result = PhotomStep.call(image)
    phot = result.meta.photometry
    assert phot.conversion_megajanskys == 0.5 and phot.conversion_megajanskys_uncertainty == 0.01
    assert phot.pixelarea_steradians == 2.8e-13
    assert phot.pixelarea_arcsecsq == pytest.approx(2.8e-13 * (180 / np.pi * 3600) ** 2, rel=1e-12)
    np.testing.assert_array_equal(result.data, before)

