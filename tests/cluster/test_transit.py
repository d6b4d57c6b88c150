"""The pool cuts each replica's TTFT budget by the delivery time it measured, not a guess."""

from __future__ import annotations

from agentflow.cluster.transit import TransitTracker


def test_the_configured_floor_holds_until_enough_requests_were_measured():
    tracker = TransitTracker(min_samples=4)
    for _ in range(3):
        tracker.record(driver_ttft_s=0.300, engine_ttft_s=0.100)
    assert tracker.allowance_ms(floor_ms=20.0) == 20.0
    tracker.record(driver_ttft_s=0.300, engine_ttft_s=0.100)
    assert abs(tracker.allowance_ms(floor_ms=20.0) - 200.0) < 1e-6


def test_a_slow_link_raises_the_allowance_to_its_high_quantile():
    tracker = TransitTracker(quantile=0.9)
    for transit_ms in range(10, 110, 10):  # 10 .. 100 ms
        tracker.record(driver_ttft_s=0.5 + transit_ms / 1e3, engine_ttft_s=0.5)
    assert 90.0 <= tracker.allowance_ms(floor_ms=20.0) <= 100.0


def test_a_fast_link_never_goes_below_the_floor_nor_below_zero():
    tracker = TransitTracker()
    for _ in range(10):  # the engine's own clock ran a little past the driver's
        tracker.record(driver_ttft_s=0.100, engine_ttft_s=0.101)
    assert tracker.allowance_ms(floor_ms=5.0) == 5.0
    assert tracker.allowance_ms(floor_ms=0.0) == 0.0


def test_only_the_recent_window_counts():
    tracker = TransitTracker(window=8)
    for _ in range(8):
        tracker.record(driver_ttft_s=1.0, engine_ttft_s=0.0)  # a slow start (1 s)
    for _ in range(8):
        tracker.record(driver_ttft_s=0.03, engine_ttft_s=0.0)
    assert abs(tracker.allowance_ms(floor_ms=0.0) - 30.0) < 1e-6
    assert tracker.num_samples == 8
