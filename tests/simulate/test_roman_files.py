"""simulate --format roman -> refs import -> strun exposure_pipeline -> a Roman Level-2 image."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import asdf
import numpy as np
import pytest

from calpipe import cli
from calpipe.truth import compare

rdm = pytest.importorskip("roman_datamodels.datamodels", reason="needs calpipe[roman] (roman_datamodels)")

STRUN = str(Path(sys.executable).with_name("strun"))
ROOT = "cp00001001001_0001_wfi01"


def strun(*args, cwd):
    return subprocess.run([STRUN, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "CALPIPE_REFS"})


def roman_open(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rdm.open(path)


@pytest.fixture(scope="module")
def roman_sim(tmp_path_factory):
    work = tmp_path_factory.mktemp("roman")
    assert cli.main(["simulate", "--format", "roman", "--size", "512", "--seed", "3", "--out",
                     str(work / "sim")]) == 0
    return work


def test_the_simulated_files_are_roman_files(roman_sim):
    with roman_open(roman_sim / "sim" / f"{ROOT}_uncal.asdf") as raw:
        assert type(raw).__name__ == "ScienceRawModel" and raw.data.shape == (6, 512, 512)
        assert raw.meta.instrument.data_encoding_offset == 2048 and raw.reference_read.shape == (512, 512)
    for path in sorted((roman_sim / "sim" / "refs").glob("*.asdf")):
        with roman_open(path) as ref:
            ref.validate()
            assert type(ref).__name__.endswith("RefModel")


def test_roman_exposure_calibrates_against_its_truth(roman_sim, capsys):
    sim = roman_sim / "sim"
    assert cli.main(["refs", "--store", str(roman_sim / "S"), "import", str(sim / "refs")]) == 0
    assert "11 reference files indexed" in capsys.readouterr().out
    done = strun("exposure_pipeline", sim / f"{ROOT}_uncal.asdf", "--ref-store", "S", "--output-dir", "out",
                 cwd=roman_sim)
    assert done.returncode == 0, done.stderr[-3000:]
    with roman_open(roman_sim / "out" / f"{ROOT}_cal.asdf") as cal:
        cal.validate()
        assert type(cal).__name__ == "ImageModel" and cal.data.shape == (504, 504)
        steps = dict(cal.meta.cal_step)
        assert {steps[k] for k in ("dq_init", "saturation", "refpix", "linearity", "ramp_fit", "dark",
                                   "assign_wcs", "flat_field", "photom")} == {"COMPLETE"}
        assert cal.meta.ref_file.linearity == "roman_calpipe_wfi01_linearity.asdf"
        # the dark decay and the converter's non-linearity were simulated, and removed
        assert steps["dark_decay"] == "COMPLETE" and steps["wfi18_transient"] == "SKIPPED"
        assert cal.meta.ref_file.darkdecaysignal == "roman_calpipe_wfi01_darkdecaysignal.asdf"
        assert cal.meta.ref_file.integralnonlinearity == "roman_calpipe_wfi01_integralnonlinearity.asdf"
        assert cal.meta.photometry.conversion_megajanskys == pytest.approx(0.64)
        assert cal.meta.wcs is not None and cal.border_ref_pix_left.shape == (6, 512, 4)
        assert cal.meta.exposure.start_time.isot.startswith("2027-06-01")
        with asdf.open(sim / f"{ROOT}_truth.asdf") as truth:
            stats = compare(cal, truth.tree)
    assert stats["clean_pixels"] > 200_000
    assert abs(stats["median_pull"]) < 0.05
    assert 0.9 < stats["robust_std_pull"] < 1.1
    assert stats["saturated_flagged"] == 1.0



def test_a_reference_of_another_detector_is_refused(roman_sim):
    sim = roman_sim / "sim"
    with roman_open(sim / "refs" / "roman_calpipe_wfi01_mask.asdf") as mask:
        mask.meta.instrument.detector = "WFI02"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mask.save(roman_sim / "wfi02_mask.asdf")
    done = strun("dq_init", sim / f"{ROOT}_uncal.asdf", "--override_mask", "wfi02_mask.asdf",
                 "--output-dir", "bad", cwd=roman_sim)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "detector WFI02" in errors[0] and "WFI01" in errors[0], done.stderr[-2000:]
    assert not (roman_sim / "bad").exists() or not any((roman_sim / "bad").iterdir())


@pytest.mark.parametrize("detector", ["WFI01", "WFI18"])
def test_the_simulated_readout_effects_are_what_the_kernels_remove(detector):
    """Same exposure, same draws, with and without the effects: after the dark decay, the WFI18
    transient and the integral non-linearity are removed, what is left is the rounding. As in
    the pipeline, the bias level is off while the transient is measured (refpix) and back on
    for the non-linearity table (linearity)."""
    from calpipe.kernels.dark_decay import pixel_read_times, subtract_dark_decay
    from calpipe.kernels.linearity import correct_integral_nonlinearity
    from calpipe.kernels.wfi18_transient import correct_transient
    from calpipe.simulate import FRAME_TIME, default_read_pattern, make_detector, make_scene, simulate_exposure
    from calpipe.simulate.roman_files import decay_table, inl_table, readout_effects

    pattern = default_read_pattern(6)
    det = make_detector(256, seed=0)
    flux, _ = make_scene((248, 248), seed=1)
    plain = simulate_exposure(det, flux, read_pattern=pattern, seed=1).raw.astype(np.float32)
    exposure = simulate_exposure(det, flux, read_pattern=pattern, seed=1,
                                 read_signal=readout_effects(256, detector, FRAME_TIME, 0))
    data = exposure.raw.astype(np.float32)
    bias = (np.repeat(exposure.truth["bias_channel"], 256 // 32, axis=1)[:, None, :]
            + exposure.truth["bias_row"][:, :, None]).astype(np.float32)
    data -= bias
    times = pixel_read_times((256, 256), FRAME_TIME, int(detector[3:]))
    decay = decay_table()[detector]
    subtract_dark_decay(data, pattern, FRAME_TIME, decay["amplitude"], decay["time_constant"], times)
    if detector == "WFI18":
        mean_times = np.array([np.mean(r) for r in pattern]) * FRAME_TIME
        sci = np.s_[4:-4, 4:-4]
        assert correct_transient(data[:, 4:-4, 4:-4], np.ones((248, 248), bool), mean_times, times[sci])
    data += bias
    correct_integral_nonlinearity(data, np.zeros(data.shape, np.uint8), pattern, *inl_table(0))
    residual = (data - plain)[:, 4:-4, 4:-4]
    assert abs(np.median(residual)) < 0.05
    assert np.quantile(np.abs(residual), 0.99) < 1.0
