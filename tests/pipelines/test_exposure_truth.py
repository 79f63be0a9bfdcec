"""The whole ExposurePipeline on a simulated exposure, measured against the simulator's truth."""

import asdf
import pytest

from calpipe import datamodels as dm
from calpipe.pipelines import ExposurePipeline
from calpipe.simulate import simulate
from calpipe.truth import compare


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    work = tmp_path_factory.mktemp("truth")
    sim = simulate(work, size=256, nresultants=6, seed=3)
    ExposurePipeline.call(str(sim.uncal), output_dir=str(work / "out"), ref_store=str(sim.refs), save_results=True)
    root = ExposurePipeline.remove_suffix(sim.uncal.stem)[0]
    with dm.open(work / "out" / f"{root}_cal.asdf") as cal, asdf.open(sim.truth, lazy_load=False) as truth:
        yield compare(cal, truth.tree)


def test_calibrated_flux_matches_truth_within_its_errors(calibrated):
    assert calibrated["clean_pixels"] > 50_000
    assert abs(calibrated["median_pull"]) < 0.05
    assert 0.9 < calibrated["robust_std_pull"] < 1.1


def test_saturated_pixels_carry_saturated(calibrated):
    assert calibrated["saturated_pixels"] > 0
    assert calibrated["saturated_flagged"] == 1.0


def test_cosmic_rays_are_flagged_and_repaired(calibrated):
    assert calibrated["jump_pixels"] > 500
    assert calibrated["jumps_flagged"] > 0.8
    assert calibrated["jump_pixels_within_5_sigma"] > 0.9
