import pytest
from hypothesis import given, settings

from agentflow.planner.dp import solve_dp
from agentflow.planner.fast import admit_greedy
from agentflow.planner.feasibility import check_admission
from agentflow.planner.ledger import least_prompt_margin_s
from agentflow.planner.problem import PlanningProblem, build_problem
from agentflow.planner.step_plan import Admission, Rejection

from .factories import PREDICTOR, instance_strategy, make_config, make_request


@settings(max_examples=300, deadline=None, database=None)
@given(instance_strategy(max_running=6, max_waiting=8))
def test_fast_admits_within_one_of_exact_on_small_instances(instance):
    now, running, waiting, config = instance
    problem = build_problem(now, running, waiting, PREDICTOR, config)
    exact = solve_dp(problem).admission
    fast = admit_greedy(problem, config)
    assert fast.is_overloaded == exact.is_overloaded
    assert int(exact.admitted.sum()) - 1 <= int(fast.admitted.sum()) <= int(exact.admitted.sum())


def _admit(instance) -> tuple[PlanningProblem, Admission]:
    """The fast planner's admission for a generated instance."""
    now, running, waiting, config = instance
    problem = build_problem(now, running, waiting, PREDICTOR, config)
    return problem, admit_greedy(problem, config)


@settings(max_examples=150, deadline=None, database=None)
@given(instance_strategy(max_running=20, max_waiting=30))
def test_fast_admission_passes_the_reference_feasibility_check(instance):
    problem, admission = _admit(instance)
    assert bool(problem.is_old[~admission.admitted].any()) is False
    if not admission.is_overloaded:
        assert check_admission(problem, admission.admitted).is_feasible
    for job, reason in admission.reason_by_job.items():
        assert not admission.admitted[job]
        assert isinstance(reason, Rejection)


def test_a_rejected_request_may_displace_a_bulkier_new_one():
    # Moore-Hodgson: the long prompt goes in first (earliest deadline) and blocks the second
    # short one; trading it for that one makes room for the third.
    long_prompt = make_request("long", ttft_s=0.8, num_prompt_tokens=1400, max_output_tokens=4)
    short = [
        make_request(f"s{i}", ttft_s=0.9, num_prompt_tokens=500, max_output_tokens=4)
        for i in range(3)
    ]
    problem = build_problem(0.0, [], [long_prompt, *short], PREDICTOR, make_config())
    admission = admit_greedy(problem)
    admitted = {problem.requests[j].request_id for j in range(4) if admission.admitted[j]}
    assert admitted == {"s0", "s1", "s2"}
    assert admission.reason_by_job == {0: Rejection.COMPUTE}
    assert int(solve_dp(problem).admission.admitted.sum()) == 3


def test_a_tight_cadence_request_that_blocks_two_others_is_traded_for_both():
    # The 20 ms TPOT request has the least prefill work, so no one-for-one exchange removes
    # it, yet its decode cadence takes the supply that two later prompts need.
    tight = make_request(
        "tight", ttft_s=0.1, tpot_s=0.02, num_prompt_tokens=128, max_output_tokens=16
    )
    others = [
        make_request("a", ttft_s=0.1, tpot_s=0.05, num_prompt_tokens=256, max_output_tokens=64),
        make_request("b", ttft_s=0.4, tpot_s=0.05, num_prompt_tokens=128, max_output_tokens=16),
        make_request("c", ttft_s=0.4, tpot_s=0.1, num_prompt_tokens=400, max_output_tokens=200),
    ]
    problem = build_problem(0.0, [], [tight, *others], PREDICTOR, make_config())
    admission = admit_greedy(problem)
    ids = [r.request_id for r in problem.requests]
    admitted = {ids[j] for j in range(len(ids)) if admission.admitted[j]}
    assert admitted == {"a", "b", "c"}
    assert admission.reason_by_job == {ids.index("tight"): Rejection.COMPUTE}
    assert check_admission(problem, admission.admitted).is_feasible
    assert int(solve_dp(problem).admission.admitted.sum()) == 3


@settings(max_examples=150, deadline=None, database=None)
@given(instance_strategy(max_running=20, max_waiting=30))
def test_the_prompt_margin_fast_hands_on_is_that_of_its_admitted_set(instance):
    # The step layout lets ahead-of-schedule decoders spend this margin: after the greedy's
    # swaps and retries it must still describe the set it admitted.
    problem, admission = _admit(instance)
    if admission.is_overloaded:
        return
    fresh = least_prompt_margin_s(problem, admission.admitted)
    assert admission.prompt_margin_s == pytest.approx(fresh, abs=1e-9)
