"""The CPU-scale mixed workload used by the real-engine benchmarks."""

import math
from dataclasses import replace

import pytest

from agentflow.planner import AffinePiece, StepTimePredictor
from agentflow.workloads.cpu_mix import (
    CLASSES,
    REFERENCE_DECODE_MS,
    at_rate,
    build_workload,
    classes_for,
    lone_decode_ms,
    sim_specs,
    simulated_capacity_rps,
)


def test_workload_mixes_the_three_slo_classes_within_their_length_ranges():
    workload = build_workload(300, "poisson", seed=1)
    by_class = {cls.name: cls for cls in CLASSES}
    assert {r.slo_class for r in workload} == set(by_class)
    for request in workload:
        cls = by_class[request.slo_class]
        assert cls.prompt_range[0] <= request.prompt_tokens <= cls.prompt_range[1]
        assert cls.output_range[0] <= request.output_tokens <= cls.output_range[1]
        assert (request.tpot_ms, request.ttft_slowdown) == (cls.tpot_ms, cls.ttft_slowdown)


def test_at_rate_time_scales_the_same_requests():
    workload = build_workload(50, "bursty", seed=0)
    fast, slow = at_rate(workload, 10.0), at_rate(workload, 1.0)
    assert [r.prompt_tokens for r in fast] == [r.prompt_tokens for r in slow]
    assert fast[-1].arrival_s * 10 == slow[-1].arrival_s
    assert build_workload(50, "bursty", seed=0) == workload  # deterministic


def test_on_a_machine_slower_than_the_reference_the_tpots_scale_with_its_decode_step():
    slower = classes_for(REFERENCE_DECODE_MS * 4.35)  # a 2-core float32 Xeon: 87 ms
    assert [c.tpot_ms for c in slower] == pytest.approx([c.tpot_ms * 4.35 for c in CLASSES])
    assert [c.ttft_slowdown for c in slower] == [c.ttft_slowdown for c in CLASSES]
    # Only the SLOs change: the same requests arrive at the same times.
    scaled, plain = build_workload(40, "poisson", 3, slower), build_workload(40, "poisson", 3)
    assert [(r.arrival_s, r.prompt_tokens, r.output_tokens) for r in scaled] == [
        (r.arrival_s, r.prompt_tokens, r.output_tokens) for r in plain
    ]
    assert {r.tpot_ms for r in scaled} == {c.tpot_ms for c in slower}


def test_on_a_machine_at_least_as_fast_as_the_reference_the_classes_stay_as_set():
    assert classes_for(REFERENCE_DECODE_MS) == CLASSES
    assert classes_for(REFERENCE_DECODE_MS / 3) == CLASSES
    # The packaged CPU profile (the machine the classes were set on) keeps them.
    assert classes_for(lone_decode_ms(StepTimePredictor.default_cpu())) == CLASSES


def test_the_decode_step_the_classes_follow_is_a_lone_decoder_mid_way_through_a_coding_request():
    fitted_here = StepTimePredictor([AffinePiece(0.083, 2.13e-3, 2.3e-3, 7.3e-6, 0.0)])
    assert lone_decode_ms(fitted_here) == pytest.approx((0.083 + 2.3e-3 + 256 * 7.3e-6) * 1e3)


@pytest.mark.parametrize("bad", [0.0, -5.0, math.nan, math.inf])
def test_a_decode_step_that_is_not_a_positive_time_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="lone_decode_ms"):
        classes_for(bad)


def test_simulated_requests_get_the_ttft_budgets_the_real_replay_gives_them():
    predictor = StepTimePredictor.default_cpu()
    workload = build_workload(20, "poisson", seed=2)
    pinned = replace(workload[0], ttft_ms=750.0)
    specs = sim_specs([pinned, *workload[1:]], predictor)
    assert specs[0].ttft_s == pytest.approx(0.75)  # an absolute budget wins
    for spec, request in zip(specs[1:], workload[1:], strict=True):
        isolated_s = predictor.isolated_prefill_s(request.prompt_tokens)
        assert spec.ttft_s == pytest.approx(request.ttft_slowdown * isolated_s)
        assert spec.tpot_s == pytest.approx(request.tpot_ms / 1e3)
        assert (spec.arrival_s, spec.num_prompt_tokens, spec.num_output_tokens) == (
            request.arrival_s,
            request.prompt_tokens,
            request.output_tokens,
        )


def test_the_simulated_capacity_estimate_falls_on_a_slower_engine():
    # The machine this runs on: one step costs 83 ms plus 2.1 ms per prompt token.
    here = StepTimePredictor([AffinePiece(0.083, 2.13e-3, 2.3e-3, 7.3e-6, 0.0)])
    twice_as_slow = StepTimePredictor([AffinePiece(0.166, 4.26e-3, 4.6e-3, 1.46e-5, 0.0)])
    # The same SLOs on both, so that only the engine's speed differs.
    workload = build_workload(30, "poisson", 0, classes_for(lone_decode_ms(here)))
    fast = simulated_capacity_rps(workload, "fcfs", here, start_rps=0.5)
    slow = simulated_capacity_rps(workload, "fcfs", twice_as_slow, start_rps=0.5)
    assert 0.0 < slow < fast


def test_the_simulated_capacity_estimate_uses_the_engines_kv_cache_when_given():
    here = StepTimePredictor([AffinePiece(0.083, 2.13e-3, 2.3e-3, 7.3e-6, 0.0)])
    workload = build_workload(30, "poisson", 0, classes_for(lone_decode_ms(here)))
    ample = simulated_capacity_rps(workload, "fcfs", here, start_rps=0.5, kv_cache=(4096, 16))
    # 1,280 tokens: about one long summarization request at a time, the others queue for it.
    scarce = simulated_capacity_rps(workload, "fcfs", here, start_rps=0.5, kv_cache=(80, 16))
    assert 0.0 < scarce < ample
