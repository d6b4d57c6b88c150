import itertools

import numpy as np
import pytest

from agentflow.engine.sim import RequestSpec, get_profile
from agentflow.errors import ConfigError
from agentflow.workloads import (
    SCENARIO_NAMES,
    PoissonArrivals,
    build_trace,
    get_scenario,
    load_azure_trace,
    make_arrivals,
    time_scale,
)

PREDICTOR = get_profile("opt-13b-a100-tp2").predictor()

# (ttft slowdown, tpot ms) per stage, from SLOs-Serve's presets (slos_serve.md §6)
EXPECTED_SLOS = {
    "chatbot": {"chatbot": (5.0, 100.0)},
    "coding": {"coding": (5.0, 50.0)},
    "summarization": {"summarize": (3.0, 100.0)},
    "mixed": {"coding": (5.0, 50.0), "chatbot": (5.0, 100.0), "summarize": (3.0, 100.0)},
    "tool_calling": {"act": (3.0, 50.0), "final": (3.0, 100.0)},
    "reasoning": {"think": (3.0, 50.0), "answer": (3.0, 100.0)},
}


def test_there_are_the_papers_six_scenarios():
    assert set(SCENARIO_NAMES) == set(EXPECTED_SLOS)


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_each_scenario_has_the_papers_slo_presets(name):
    slos = get_scenario(name).slo_by_stage
    assert {k: (v.ttft_slowdown, v.tpot_ms) for k, v in slos.items()} == EXPECTED_SLOS[name]


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_trace_requests_carry_their_stage_slo(name):
    trace = build_trace(name, 2.0, 60, PREDICTOR, seed=1)
    expected = EXPECTED_SLOS[name]
    assert len({s.program_id for s in trace}) == 60
    for spec in trace:
        slowdown, tpot_ms = expected[spec.stage]
        assert spec.tpot_s == pytest.approx(tpot_ms / 1e3)
        assert spec.ttft_s == pytest.approx(
            slowdown * PREDICTOR.isolated_prefill_s(spec.num_prompt_tokens)
        )
        assert spec.num_prompt_tokens >= 1 and spec.num_output_tokens >= 1
        assert spec.num_prompt_tokens + spec.num_output_tokens <= 8192


def test_multi_stage_programs_are_chains_whose_context_grows():
    trace = build_trace("tool_calling", 1.0, 30, PREDICTOR, seed=2)
    by_program: dict[str, list[RequestSpec]] = {}
    for spec in trace:
        by_program.setdefault(spec.program_id, []).append(spec)
    for calls in by_program.values():
        assert calls[0].after_id is None and calls[-1].stage == "final"
        assert all(c.stage == "act" for c in calls[:-1])
        for previous, current in itertools.pairwise(calls):
            assert current.after_id == previous.request_id
            assert current.delay_s > 0
            grown = previous.num_prompt_tokens + previous.num_output_tokens
            assert current.num_prompt_tokens >= grown
    reasoning = build_trace("reasoning", 1.0, 10, PREDICTOR)
    think, answer = reasoning[0], reasoning[1]
    assert (think.stage, answer.stage) == ("think", "answer")
    assert answer.num_prompt_tokens == think.num_prompt_tokens + think.num_output_tokens
    assert answer.after_id == think.request_id and answer.delay_s == 0


def test_traces_are_deterministic_given_a_seed():
    assert build_trace("reasoning", 2.0, 50, PREDICTOR, seed=4) == build_trace(
        "reasoning", 2.0, 50, PREDICTOR, seed=4
    )
    assert build_trace("reasoning", 2.0, 50, PREDICTOR, seed=4) != build_trace(
        "reasoning", 2.0, 50, PREDICTOR, seed=5
    )


def test_azure_scenarios_replay_a_time_scaled_trace_window():
    trace = load_azure_trace("code")
    assert len(trace) > 8000 and trace.mean_rate_rps == pytest.approx(2.57, abs=0.01)
    slow = build_trace("coding", 1.0, 200, PREDICTOR)
    fast = build_trace("coding", 4.0, 200, PREDICTOR)
    assert [s.num_prompt_tokens for s in slow] == [s.num_prompt_tokens for s in fast]
    slow_times = np.array([s.arrival_s for s in slow])
    fast_times = np.array([s.arrival_s for s in fast])
    np.testing.assert_allclose(slow_times, 4 * fast_times)
    assert (len(slow_times) - 1) / slow_times[-1] == pytest.approx(1.0)


def test_mixed_splits_programs_and_rate_between_its_components():
    trace = build_trace("mixed", 3.0, 90, PREDICTOR)
    counts: dict[str, int] = {}
    for spec in trace:
        counts[spec.stage] = counts.get(spec.stage, 0) + 1
    assert counts == {"coding": 30, "chatbot": 30, "summarize": 30}
    assert [s.arrival_s for s in trace] == sorted(s.arrival_s for s in trace)


def test_arrival_processes_hit_the_target_rate():
    rng = np.random.default_rng(0)
    poisson = PoissonArrivals().times(5000, 8.0, rng)
    assert 5000 / poisson[-1] == pytest.approx(8.0, rel=0.05)
    bursty = make_arrivals("azure_conv").times(1000, 8.0, rng)
    assert (1000 - 1) / bursty[-1] == pytest.approx(8.0)
    np.testing.assert_allclose(time_scale(np.array([5.0, 6.0, 9.0]), 1.0), [0.0, 0.5, 2.0])


def test_unknown_names_are_config_errors():
    with pytest.raises(ConfigError, match="unknown scenario"):
        get_scenario("poetry")
    with pytest.raises(ConfigError, match="unknown process"):
        make_arrivals("uniform")
