"""The CPU-scale mixed workload used by the real-engine benchmarks."""

from agentflow.workloads.cpu_mix import CLASSES, at_rate, build_workload


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
