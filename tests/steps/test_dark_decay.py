"""dark_decay: the reference's decay subtracted by read time, or a logged skip."""

import logging

import numpy as np
import pytest
from support.tiny_data import exposure_meta, ref_meta, write_tiny_store

from calpipe import cli
from calpipe import datamodels as dm
from calpipe.kernels.dark_decay import pixel_read_times, read_decay, subtract_dark_decay
from calpipe.references import RefStore
from calpipe.simulate import make_detector, make_scene, simulate_exposure
from calpipe.steps import DarkDecayStep

PATTERN = [[1], [2, 3], [4, 5, 6, 7], [8, 9, 10, 11, 12, 13], [14]]
FRAME_TIME = 3.04
DECAY = {"amplitude": 40.0, "time_constant": 15.0}


def ramp_model(data, detector="WFI07"):
    meta = exposure_meta(nresultants=len(PATTERN), read_pattern=PATTERN, frame_time=FRAME_TIME)
    meta["instrument"]["detector"] = detector
    return dm.RampModel(meta=meta, data=data.astype(np.float32), groupdq=np.zeros(data.shape, np.uint8),
                        pixeldq=np.zeros(data.shape[1:], np.uint32))


def decay_store(folder, table):
    store = write_tiny_store(folder)
    ref = dm.DarkDecaySignalRefModel(meta=ref_meta("darkdecaysignal", detector="ANY"), decay_table=table)
    RefStore(store).add([ref.save(folder / "decay.asdf")])
    return store


def test_the_decay_of_the_exposures_detector_is_subtracted(tmp_path):
    data = np.random.default_rng(1).uniform(0, 2000, (len(PATTERN), 64, 64))
    store = decay_store(tmp_path / "refs", {"WFI07": DECAY, "WFI08": {"amplitude": 1.0, "time_constant": 2.0}})
    out = DarkDecayStep.call(ramp_model(data), ref_store=str(store))
    expected = data.astype(np.float32)
    subtract_dark_decay(expected, PATTERN, FRAME_TIME, 40.0, 15.0, pixel_read_times((64, 64), FRAME_TIME, 7))
    np.testing.assert_array_equal(out.data, expected)
    assert out.meta.cal_step.dark_decay == "COMPLETE"
    assert out.meta.ref_file.darkdecaysignal == str(store / "decay.asdf")
    assert out.meta.dark_decay.to_dict() == DECAY


def _skip_reason(caplog, model, **pars):
    with caplog.at_level(logging.INFO, logger="calpipe"):
        logging.getLogger("calpipe").propagate = True
        out = DarkDecayStep.call(model, **pars)
    assert out.meta.cal_step.dark_decay == "SKIPPED"
    return out, next(r.getMessage() for r in caplog.records if "dark_decay skipped" in r.getMessage())


def test_skipped_with_the_reason_without_a_reference(tmp_path, caplog):
    data = np.full((len(PATTERN), 64, 64), 100.0)
    out, reason = _skip_reason(caplog, ramp_model(data), ref_store=str(write_tiny_store(tmp_path / "refs")))
    assert "no darkdecaysignal reference" in reason
    np.testing.assert_array_equal(out.data, data)
    assert "darkdecaysignal" not in out.meta.ref_file


def test_skipped_with_the_reason_when_the_table_lacks_the_detector(tmp_path, caplog):
    store = decay_store(tmp_path / "refs", {"WFI07": {"amplitude": None, "time_constant": None}})
    data = np.full((len(PATTERN), 64, 64), 100.0)
    out, reason = _skip_reason(caplog, ramp_model(data), ref_store=str(store))
    assert "decay.asdf has no decay for detector WFI07" in reason
    np.testing.assert_array_equal(out.data, data)


def test_removes_the_decay_the_simulator_adds_read_by_read():
    """Truth: the same exposure (same noise draws) simulated without the decay."""
    detector = make_detector(128, seed=2)
    flux, _ = make_scene((120, 120), seed=2)
    times = pixel_read_times((128, 128), FRAME_TIME, 7)

    def decay(k, read):
        read += read_decay(k, FRAME_TIME, DECAY["amplitude"], DECAY["time_constant"], times).astype(np.float32)

    plain = simulate_exposure(detector, flux, read_pattern=PATTERN, seed=3).raw.astype(np.float32)
    with_decay = simulate_exposure(detector, flux, read_pattern=PATTERN, seed=3, read_signal=decay).raw
    model = ramp_model(with_decay)
    assert np.abs(model.data - plain).max() > 30
    out = DarkDecayStep.call(model, override_darkdecaysignal=dm.DarkDecaySignalRefModel(
        meta=ref_meta("darkdecaysignal", detector="ANY"), decay_table={"WFI07": DECAY}))
    residual = out.data - plain
    # both exposures are rounded to whole DN, one with the decay in: within one DN
    assert np.abs(residual).max() < 1.0
    assert abs(residual.mean()) < 0.02


def test_a_roman_reference_made_by_roman_datamodels(tmp_path):
    rdm = pytest.importorskip("roman_datamodels.datamodels", reason="needs calpipe[roman] (roman_datamodels)")
    ref = rdm.DarkdecaysignalRefModel.create_fake_data()
    ref.decay_table = {f"WFI{n:02d}": {"amplitude": 3.0 * n, "time_constant": 10.0 + n} for n in range(1, 19)}
    (tmp_path / "cache").mkdir()
    ref.save(tmp_path / "cache" / "roman_darkdecaysignal.asdf")
    store = write_tiny_store(tmp_path / "refs")
    assert cli.main(["refs", "--store", str(store), "import", str(tmp_path / "cache")]) == 0
    data = np.full((len(PATTERN), 64, 64), 500.0)
    out = DarkDecayStep.call(ramp_model(data), ref_store=str(store))
    expected = data.astype(np.float32)
    subtract_dark_decay(expected, PATTERN, FRAME_TIME, 21.0, 17.0, pixel_read_times((64, 64), FRAME_TIME, 7))
    np.testing.assert_allclose(out.data, expected, rtol=0, atol=1e-4)
    assert out.meta.cal_step.dark_decay == "COMPLETE"
