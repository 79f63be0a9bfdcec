"""assign_wcs as a step: the WCS it attaches is the kernel's, built from the distortion
reference and the pointing; an exposure without a pointing is skipped."""

import numpy as np
import pytest

from calpipe.errors import CalpipeError
from calpipe.kernels import wcs as kw
from calpipe.steps.assign_wcs import AssignWcsStep


def test_wcs_is_the_one_built_from_the_reference_and_pointing(field, distortion, distortion_file):
    model = AssignWcsStep.call(field.models[0].copy(), override_distortion=distortion_file)
    assert model.meta.cal_step.assign_wcs == "COMPLETE"
    assert model.meta.ref_file.distortion == distortion_file
    expected = kw.build_wcs(distortion, model.meta.wcsinfo.to_dict(), model.data.shape)
    x, y = np.meshgrid(np.linspace(0, 511, 7), np.linspace(0, 511, 7))
    np.testing.assert_allclose(model.meta.wcs(x, y), expected(x, y), rtol=0, atol=1e-10)
    assert model.meta.wcsinfo.s_region == kw.s_region(expected)


def test_missing_pointing_is_skipped_without_a_wcs(field, distortion_file):
    model = field.models[0].copy()
    del model.meta.wcsinfo
    model = AssignWcsStep.call(model, override_distortion=distortion_file)
    assert model.meta.cal_step.assign_wcs == "SKIPPED" and model.meta.get("wcs") is None


def test_missing_distortion_reference_is_a_calpipe_error(field, tmp_path):
    with pytest.raises(CalpipeError, match="absent.asdf"):
        AssignWcsStep.call(field.models[0].copy(), override_distortion=str(tmp_path / "absent.asdf"))
