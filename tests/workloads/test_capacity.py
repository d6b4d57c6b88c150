import math
from collections.abc import Callable

import pytest

from agentflow.engine.sim import FinishReason, Lane, RequestOutcome, get_profile
from agentflow.workloads import (
    CapacitySettings,
    ProbeResult,
    bisect_capacity,
    find_capacity,
    score,
)


def _threshold(
    capacity_rps: float,
) -> tuple[Callable[[float], ProbeResult], list[float]]:
    calls: list[float] = []

    def evaluate(rate_rps: float) -> ProbeResult:
        calls.append(rate_rps)
        attainment = 1.0 if rate_rps <= capacity_rps else 0.5
        return ProbeResult(rate_rps, attainment, True, attainment > 0.9, 100)

    return evaluate, calls


@pytest.mark.parametrize("capacity_rps", [0.07, 1.0, 3.3, 17.0, 250.0])
def test_bisection_finds_a_known_threshold_to_5_percent(capacity_rps):
    evaluate, calls = _threshold(capacity_rps)
    result = bisect_capacity(evaluate, start_rps=1.0)
    assert result.capacity_rps <= capacity_rps
    assert result.capacity_rps >= capacity_rps / 1.05
    assert len(calls) <= 20
    assert all(p.passed == (p.rate_rps <= capacity_rps) for p in result.probes)


@pytest.mark.parametrize("capacity_rps", [0.5, 0.93, 1.04, 1.2, 2.6])
def test_a_short_walk_from_a_good_estimate_finds_the_same_threshold(capacity_rps):
    evaluate, _ = _threshold(capacity_rps)
    result = bisect_capacity(evaluate, start_rps=1.0, step=1.1)
    assert capacity_rps / 1.05 <= result.capacity_rps <= capacity_rps
    assert all(p.passed == (p.rate_rps <= capacity_rps) for p in result.probes)


def test_an_estimate_within_the_step_takes_three_probes_where_a_blind_start_takes_six():
    evaluate, short_walk = _threshold(0.62)
    bisect_capacity(evaluate, start_rps=0.6, step=1.1)
    evaluate, blind = _threshold(0.62)
    bisect_capacity(evaluate, start_rps=0.42)
    assert len(short_walk) == 3
    assert len(blind) == 6


@pytest.mark.parametrize(("step", "resolution"), [(1.0, 0.05), (0.5, 0.05), (2.0, 0.0)])
def test_a_walk_that_cannot_bracket_is_refused(step, resolution):
    evaluate, calls = _threshold(1.0)
    with pytest.raises(ValueError, match=r"step|resolution"):
        bisect_capacity(evaluate, step=step, resolution=resolution)
    assert calls == []


def test_bisection_reports_zero_when_even_the_floor_fails():
    evaluate, _ = _threshold(0.001)
    assert bisect_capacity(evaluate, min_rps=0.01).capacity_rps == 0.0


def _outcome(
    request_id: str,
    program_id: str,
    times: list[float],
    *,
    lane: Lane = Lane.ADMITTED,
    finished: bool = True,
) -> RequestOutcome:
    return RequestOutcome(
        request_id=request_id,
        program_id=program_id,
        stage="s",
        arrival_s=0.0,
        ttft_s=1.0,
        tpot_s=0.1,
        num_prompt_tokens=10,
        num_output_tokens=len(times),
        token_times_s=tuple(times),
        lane=lane,
        finish_reason=FinishReason.LENGTH if finished else FinishReason.TIMEOUT,
        finish_s=times[-1] if finished else None,
        num_preemptions=0,
    )


def test_score_counts_programs_best_effort_as_misses_and_checks_drain():
    good = [0.5 + 0.1 * i for i in range(30)]
    late = [2.0 + 0.1 * i for i in range(30)]
    outcomes = [
        _outcome("a:0", "a", good),
        _outcome("a:1", "a", good),  # program a: both stages met
        _outcome("b:0", "b", good),
        _outcome("b:1", "b", late),  # program b: one stage late -> miss
        _outcome("c:0", "c", good, lane=Lane.BEST_EFFORT),  # best-effort -> miss
        _outcome("d:0", "d", good),
    ]
    result = score(outcomes)
    assert result.num_programs == 4
    assert result.attainment == pytest.approx(0.5)
    assert result.is_drained and not result.passed
    undrained = score([_outcome("e", "e", [100.0] * 5)])
    assert not undrained.is_drained


def test_find_capacity_is_monotone_in_the_policy_quality_on_a_real_scenario():
    profile = get_profile("opt-13b-a100-tp2")
    settings = CapacitySettings(num_programs=120)
    vllm = find_capacity("chatbot", "vllm", profile, settings)
    assert vllm.capacity_rps > 0
    passing = [p for p in vllm.probes if p.passed]
    failing = [p for p in vllm.probes if not p.passed]
    assert max(p.rate_rps for p in passing) == pytest.approx(vllm.capacity_rps)
    assert min(p.rate_rps for p in failing) <= vllm.capacity_rps * 1.05 + 1e-9
    assert not math.isnan(vllm.capacity_rps)


def test_plan_replicas_adds_replicas_as_the_rate_grows():
    from agentflow.workloads import plan_replicas

    profile = get_profile("opt-13b-a100-tp2")
    settings = CapacitySettings(num_programs=150)
    low = plan_replicas("chatbot", 1.0, profile, "vllm", settings=settings)
    high = plan_replicas("chatbot", 12.0, profile, "vllm", settings=settings)
    assert low.num_replicas == 1
    assert high.num_replicas is not None and high.num_replicas >= 2
    assert high.num_gpus == high.num_replicas * profile.num_gpus
    assert not high.probes[high.num_replicas - 1].passed
