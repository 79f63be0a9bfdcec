"""Memory reservations: the size rule, scaling by history, the resource model's hook, the ladder."""

import pytest

from calpipe.batch import memory
from calpipe.batch.memory import apply_memory_mb, estimate_memory_mb, fit_memory_mb, next_reservation, size_rule_mb


def test_size_rule_counts_ramp_and_image_bytes():
    # 4096x4096 science pixels, 6 resultants: 5 bytes per pixel and resultant, 40 per pixel.
    npix = 4096 * 4096
    expected = memory.BASE_MB + npix * (5 * 6 + 40) / 2**20
    assert size_rule_mb(npix, 6) == pytest.approx(expected)
    assert 1400 < size_rule_mb(npix, 6) < 1600
    assert size_rule_mb(npix, 12) - size_rule_mb(npix, 6) == pytest.approx(npix * 30 / 2**20)


def test_without_history_or_model_the_size_rule_is_used(tmp_path):
    got = estimate_memory_mb(tmp_path / "x_uncal.asdf", npixels=65536, nresultants=6,
                             database=str(tmp_path / "absent.db"))
    assert got.source == "size-rule"
    assert got.mb == pytest.approx(size_rule_mb(65536, 6))
    assert not (tmp_path / "absent.db").exists()


def test_history_scales_the_rule_by_the_worst_measured_ratio(monkeypatch):
    monkeypatch.setattr(memory, "reservation_mb", lambda members, database=None: None)
    rule = size_rule_mb(65536, 6)
    history = [(65536, 6, rule * 1.2), (65536, 6, rule * 0.9), (65536, 6, None)]
    got = estimate_memory_mb("x_uncal.asdf", npixels=65536, nresultants=6, history=history)
    assert got.source == "history"
    assert got.mb == pytest.approx(rule * 1.2)
    # A wild measurement is bounded.
    got = estimate_memory_mb("x_uncal.asdf", npixels=65536, nresultants=6, history=[(65536, 6, rule * 100)])
    assert got.mb == pytest.approx(rule * memory.HISTORY_SCALE_LIMITS[1])


def test_the_resource_model_wins_when_it_predicts(monkeypatch):
    calls = []

    def reservation_mb(members, database=None):
        calls.append((members, database))
        return None if "unknown" in str(members[0]) else (1234.0, "image/v3")

    monkeypatch.setattr(memory, "reservation_mb", reservation_mb)
    got = estimate_memory_mb("a_uncal.asdf", npixels=10, nresultants=6, database="t.db")
    assert (got.mb, got.source) == (1234.0, "model image/v3")
    assert calls == [(["a_uncal.asdf"], "t.db")]
    fallback = estimate_memory_mb("unknown_uncal.asdf", npixels=10, nresultants=6)
    assert fallback.source == "size-rule"


def test_ladder_doubles_up_to_the_cap_then_stops():
    rungs, current = [], 300.0
    while (current := next_reservation(current, 2000.0)) is not None:
        rungs.append(current)
    assert rungs == [600.0, 1200.0, 2000.0]
    assert next_reservation(500.0, None) == 1000.0


def test_a_fit_reserves_for_the_worker_alone_scaled_by_earlier_fits():
    got = fit_memory_mb()
    assert (got.mb, got.source) == (memory.BASE_MB, "size-rule")  # entries only, no image
    scaled = fit_memory_mb([memory.BASE_MB * 1.2, None, memory.BASE_MB * 0.9])
    assert (scaled.mb, scaled.source) == (pytest.approx(memory.BASE_MB * 1.2), "history")


def test_an_alignment_reserves_for_one_image_scaled_by_earlier_alignments():
    npix = 1024 * 1024
    got = apply_memory_mb(npix)
    assert (got.mb, got.source) == (pytest.approx(memory.BASE_MB + npix * 40 / 2**20), "size-rule")
    assert got.mb < size_rule_mb(npix, 6)  # no ramp: less than calibrating one member
    scaled = apply_memory_mb(npix, [(npix, got.mb * 1.5), (npix, None)])
    assert (scaled.mb, scaled.source) == (pytest.approx(got.mb * 1.5), "history")
