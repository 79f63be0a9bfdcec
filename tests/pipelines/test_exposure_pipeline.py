"""ExposurePipeline on inputs its own simulator's happy path never makes."""

from pathlib import Path

import numpy as np
import pytest
from support.tiny_data import write_tiny_association

from calpipe import datamodels as dm
from calpipe import dqflags
from calpipe.errors import CalpipeError
from calpipe.pipelines import ExposurePipeline
from calpipe.simulate.write import simulate
from calpipe.steps import DQInitStep

ROOT = "cp00001001001_0001_wfi01"


def test_a_ramp_file_is_calibrated_like_its_raw_exposure(tiny, tmp_path):
    uncal, _ = tiny
    ramp_path = DQInitStep.call(str(uncal)).save(tmp_path / f"{ROOT}_dq_init.asdf")
    from_raw = ExposurePipeline.call(str(uncal))
    from_ramp = ExposurePipeline.call(ramp_path)
    np.testing.assert_array_equal(from_ramp.data, from_raw.data)
    np.testing.assert_array_equal(from_ramp.dq, from_raw.dq)


def test_a_simulated_fully_saturated_exposure_is_recognised(tmp_path, monkeypatch):
    """Its store flags some pixels NO_SAT_CHECK: they cannot saturate, and do not count."""
    sim = tmp_path / "sim"
    simulate(sim, size=64, nresultants=3, fully_saturated=True)
    monkeypatch.setenv("CALPIPE_REFS", str(sim / "refs"))
    with dm.open(next(sim.glob("*_uncal.asdf"))) as raw:
        image = ExposurePipeline.call(raw)
    assert not np.any(image.data) and not np.any(image.err)
    assert np.all(image.dq & dqflags.SATURATED)
    assert image.meta.cal_step.ramp_fit == "SKIPPED"


def test_a_failing_member_leaves_no_product_of_the_members_before_it(tiny, tmp_path):
    """Catalogs and segmentation maps are written with their _cal.asdf, not when measured."""
    uncal = Path(tiny[0])
    second = tmp_path / "cp00001001001_0002_wfi01_uncal.asdf"
    with dm.open(uncal) as raw:
        raw.meta.instrument.optical_element = "F999"  # no flat or photom for it in the store
        raw.save(second)
    out = tmp_path / "out"
    with pytest.raises(CalpipeError, match="no flat reference"):
        ExposurePipeline.call(str(write_tiny_association(tmp_path, [uncal.name, second.name])),
                              output_dir=str(out), save_results=True)
    assert not out.exists() or not any(out.iterdir())


def test_products_of_one_exposure_are_written_together(tiny, tmp_path):
    uncal, _ = tiny
    out = tmp_path / "out"
    result = ExposurePipeline.call(str(uncal), output_dir=str(out), save_results=True)
    written = sorted(p.name for p in out.iterdir())
    assert written == [f"{ROOT}_cal.asdf", f"{ROOT}_cat.ecsv", f"{ROOT}_segm.asdf"]
    assert result.meta.source_catalog.catalog_file == f"{ROOT}_cat.ecsv"
