import pytest

from agentflow.engine.sim import PolicyOptions, get_profile, simulate
from agentflow.workloads import build_trace, score
from agentflow.workloads.programs import run_programs

PROFILE = get_profile("opt-13b-a100-tp2")


@pytest.mark.parametrize(
    ("scenario", "policy", "rate_rps"),
    [
        ("reasoning", "vllm", 1.0),
        ("reasoning", "agentflow", 2.0),
        ("tool_calling", "agentflow", 0.5),
    ],
)
def test_programs_on_the_sim_engine_match_the_fast_simulator_token_for_token(
    scenario, policy, rate_rps
):
    options = PolicyOptions(tightest_tpot_s=0.05)
    run = run_programs(scenario, rate_rps, 40, PROFILE, policy, options=options)
    assert {r.status.value for r in run.results} == {"finished"}
    trace = build_trace(scenario, rate_rps, 40, PROFILE.predictor())
    fast = {o.request_id: o for o in simulate(trace, policy, PROFILE, options)}
    replayed = {o.request_id: o for o in run.outcomes}
    assert replayed.keys() == fast.keys()
    for request_id, outcome in fast.items():
        assert replayed[request_id].token_times_s == outcome.token_times_s, request_id
        assert replayed[request_id].lane == outcome.lane
    assert score(run.outcomes).attainment == score(list(fast.values())).attainment


def test_program_stage_records_follow_the_scenario_shapes():
    run = run_programs("tool_calling", 0.5, 10, PROFILE, "vllm")
    trace = {s.request_id: s for s in build_trace("tool_calling", 0.5, 10, PROFILE.predictor())}
    for result in run.results:
        for stage in result.stages:
            spec = trace[stage.request_id]
            assert stage.prompt_tokens == spec.num_prompt_tokens
            assert stage.output_tokens == spec.num_output_tokens
