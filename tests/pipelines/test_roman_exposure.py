"""A Roman exposure not made by calpipe: refs import -> strun exposure_pipeline -> its truth.

The exposure, its truth and its reference files come from tests/support/roman_ramp.py (a ramp
simulated read by read and written with roman_datamodels' own classes), so the check is
independent of calpipe's simulator and of calpipe's writers.
"""

import os
import subprocess
import sys
from pathlib import Path

import asdf
import numpy as np
import pytest

from calpipe import cli
from calpipe.truth import compare

rdm = pytest.importorskip("roman_datamodels.datamodels", reason="needs calpipe[roman] (roman_datamodels)")

from support import roman_ramp  # noqa: E402
from support.roman_ramp import open_quietly as roman_open  # noqa: E402

STRUN = str(Path(sys.executable).with_name("strun"))
SIZE = 512


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    work = tmp_path_factory.mktemp("roman_ramp")
    paths = roman_ramp.write_exposure(work / "input", size=SIZE, seed=1)
    assert cli.main(["refs", "--store", str(work / "S"), "import", str(work / "input" / "refs")]) == 0
    # Roman's amplifier channels are 128 columns wide: 4 on this detector
    done = subprocess.run([STRUN, "exposure_pipeline", paths["uncal"], "--ref-store", "S", "--output-dir", "out",
                           f"--steps.refpix.nchannels={SIZE // 128}"], cwd=work, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "CALPIPE_REFS"})
    assert done.returncode == 0, done.stderr[-3000:]
    name = Path(paths["uncal"]).name.replace("_uncal.asdf", "")
    return work / "out", name, paths


def test_the_input_is_a_roman_exposure_with_roman_references(calibrated):
    _, _, paths = calibrated
    with roman_open(paths["uncal"]) as raw:
        raw.validate()
        assert type(raw).__name__ == "ScienceRawModel"
        assert raw.data.shape == (6, SIZE, SIZE) and raw.data.dtype == np.uint16
    for reftype, path in paths["refs"].items():
        with roman_open(path) as ref:
            ref.validate()
            assert ref.meta.reftype.lower() == reftype


def test_calibrated_image_matches_the_independent_truth(calibrated):
    out, name, paths = calibrated
    with roman_open(out / f"{name}_cal.asdf") as cal:
        cal.validate()
        assert type(cal).__name__ == "ImageModel" and cal.data.shape == (SIZE - 8, SIZE - 8)
        assert dict(cal.meta.cal_step)["flat_field"] == "COMPLETE"
        assert cal.meta.ref_file.flat == Path(paths["refs"]["flat"]).name
        with asdf.open(paths["truth"]) as truth:
            stats = compare(cal, truth.tree)
    assert stats["clean_pixels"] > 0.95 * (SIZE - 8) ** 2
    assert abs(stats["median_pull"]) < 0.05
    assert 0.9 < stats["robust_std_pull"] < 1.1
    assert stats["saturated_flagged"] == 1.0
    # hits big enough to see (the truth also counts the neighbours' 3 % share): flagged or harmless
    assert stats["jump_pixels_within_5_sigma"] > 0.95


def test_segmentation_map_is_a_roman_one_and_the_catalog_stays_ecsv(calibrated):
    from astropy.table import Table

    out, name, _ = calibrated
    catalog = Table.read(out / f"{name}_cat.ecsv")
    with roman_open(out / f"{name}_segm.asdf") as segm:
        segm.validate()
        assert type(segm).__name__ == "SegmentationMapModel"
        assert segm.data.shape == (SIZE - 8, SIZE - 8) and segm.data.dtype == np.uint32
        assert segm.meta.instrument.detector == "WFI01" and segm.meta.calibration_software_name == "calpipe"
        assert set(np.unique(segm.data)) - {0} == set(catalog["label"])
