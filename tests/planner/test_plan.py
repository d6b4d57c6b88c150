import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings

from agentflow.planner import (
    PlannerConfig,
    PlanRequest,
    Rejection,
    SpecConfig,
    StepPlan,
    StepTimePredictor,
    chunk_context_tokens,
    make_planner,
    plan,
)
from agentflow.planner.batch import build_step_plan
from agentflow.planner.fast import admit_greedy
from agentflow.planner.grid import Grid
from agentflow.planner.problem import build_problem

from .factories import (
    PREDICTOR,
    instance_strategy,
    make_config,
    make_decoder,
    make_request,
    random_instance,
)

PLANNERS = ["fast", "exact"]


@pytest.mark.parametrize("planner", PLANNERS)
def test_idle_system_admits_a_feasible_request_and_gives_it_prefill(planner):
    request = make_request("r", num_prompt_tokens=256, ttft_s=1.0)
    step = plan(0.0, [], [request], PREDICTOR, make_config(planner=planner))
    assert step.admitted_ids == ("r",)
    assert step.newly_admitted_ids == ("r",)
    assert step.prefill_tokens_by_id == {"r": 256}
    assert step.token_budget == 256
    assert step.best_effort_ids == ()


@pytest.mark.parametrize("planner", PLANNERS)
def test_request_whose_ttft_is_below_its_isolated_prefill_goes_best_effort(planner):
    ttft_s = 0.5 * PREDICTOR.isolated_prefill_s(2000)
    request = make_request("r", num_prompt_tokens=2000, ttft_s=ttft_s)
    step = plan(0.0, [], [request], PREDICTOR, make_config(planner=planner))
    assert step.admitted_ids == ()
    assert step.best_effort_ids == ("r",)
    assert step.reason_by_id == {"r": Rejection.COMPUTE}
    assert step.prefill_tokens_by_id == {}


def test_request_that_already_missed_its_ttft_is_late():
    request = make_request("r", arrival_s=0.0, ttft_s=0.2)
    step = plan(1.0, [], [request], PREDICTOR, make_config())
    assert step.reason_by_id == {"r": Rejection.LATE}


def test_a_lone_late_single_token_request_plans_cleanly():
    request = make_request("r", arrival_s=0.0, ttft_s=0.5, max_output_tokens=1)
    step = plan(1.0, [], [request], PREDICTOR, make_config())
    assert step.reason_by_id == {"r": Rejection.LATE}


def test_best_effort_decoders_that_missed_an_slo_are_not_promoted():
    now = 5.0
    # 50 ms behind its bare-TPOT schedule: past the 5 % decode tolerance too (8 tokens x 2.5 ms).
    behind = make_decoder("behind", now, slack_s=-0.05, is_admitted=False)
    late_first = make_decoder("late_first", now, is_admitted=False)
    late_first = replace(late_first, ttft_s=0.1)  # first token came 0.1 s after its deadline
    on_time = make_decoder("on_time", now, is_admitted=False)
    step = plan(now, [behind, late_first, on_time], [], PREDICTOR, make_config())
    assert step.newly_admitted_ids == ("on_time",)
    assert step.reason_by_id == {"behind": Rejection.LATE, "late_first": Rejection.LATE}


def _tightest_admissible_ttft_ms(planner: str) -> int:
    """Smallest TTFT (whole ms) at which a 256-token prompt joins three 50 ms decoders."""
    decoders = [make_decoder(f"d{i}", 0.0, slack_s=0.05) for i in range(3)]
    for ttft_ms in range(20, 2000):
        prompt = make_request("p", ttft_s=ttft_ms / 1e3, num_prompt_tokens=256)
        if (
            "p"
            in plan(0.0, decoders, [prompt], PREDICTOR, make_config(planner=planner)).admitted_ids
        ):
            return ttft_ms
    raise AssertionError("never admitted")


@pytest.mark.parametrize("planner", PLANNERS)
def test_the_deadline_step_is_not_charged_overhead_the_decoders_cadence_already_paid(
    planner, monkeypatch
):
    # Decoders on a 50 ms cadence make the fluid model charge a step's overhead every 50 ms.
    # The step that ends at the prompt's deadline lasts at least `base_s`, all of it inside
    # that cadence, so only base_s * (1 - base_s / cadence) of its overhead is still unpaid:
    # the prompt is admitted on a shorter TTFT than if the idle share were assumed.
    credited = _tightest_admissible_ttft_ms(planner)
    monkeypatch.setattr(Grid, "interval_credit", lambda self, tightest, start=0: 0.0 * tightest)
    uncredited = _tightest_admissible_ttft_ms(planner)
    base_s = PREDICTOR.base_s
    config = make_config()
    idle_s = min(config.horizon_s, PREDICTOR.isolated_prefill_s(config.max_num_batched_tokens))
    cadence_s = 0.05 - config.tier_margin_s
    credit_s = base_s * base_s * (1 / cadence_s - 1 / idle_s)
    rate = 1 - base_s / cadence_s  # about: the decoders' own load is small
    assert uncredited - credited >= 0.8 * credit_s / rate * 1e3


@pytest.mark.parametrize("planner", PLANNERS)
def test_memory_limit_leaves_the_overflow_best_effort(planner):
    # 256 prompt + 64 output tokens = 20 blocks each; 45 blocks hold two.
    waiting = [make_request(f"r{i}", ttft_s=5.0) for i in range(3)]
    step = plan(0.0, [], waiting, PREDICTOR, make_config(planner=planner, kv_blocks_total=45))
    assert len(step.admitted_ids) == 2
    (left_out,) = step.best_effort_ids
    assert step.reason_by_id[left_out] == Rejection.MEMORY


def test_sequence_cap_limits_admissions():
    waiting = [make_request(f"r{i}", ttft_s=5.0, num_prompt_tokens=32) for i in range(4)]
    step = plan(0.0, [], waiting, PREDICTOR, make_config(max_num_seqs=3))
    assert len(step.admitted_ids) == 3
    assert step.max_batch_size <= 3
    assert list(step.reason_by_id.values()) == [Rejection.SEQS]


def test_tighter_tpot_among_decodes_gives_a_smaller_step_budget():
    now = 5.0
    config = make_config(tpot_tolerance=0.0)
    tight = plan(now, [make_decoder("d", now, tpot_s=0.05)], [], PREDICTOR, config)
    loose = plan(now, [make_decoder("d", now, tpot_s=0.15)], [], PREDICTOR, config)
    assert tight.step_time_budget_s < loose.step_time_budget_s
    assert tight.step_time_budget_s == pytest.approx(0.049)
    assert loose.step_time_budget_s == pytest.approx(0.149)


def test_the_step_budget_runs_to_the_next_token_due_under_the_tpot_tolerance():
    # Token 9 (8 generated) is due at t0 + 8 x 50 ms x 1.05: 20 ms later than at the bare TPOT.
    now = 5.0
    decoder = make_decoder("d", now, tpot_s=0.05)
    step = plan(now, [decoder], [], PREDICTOR, make_config(tpot_tolerance=0.05))
    assert step.step_time_budget_s == pytest.approx(0.049 + 8 * 0.05 * 0.05)


def test_ahead_of_schedule_request_gets_a_looser_tier_and_rides_along_after_the_due_one():
    now = 5.0
    on_time = make_decoder("on_time", now, tpot_s=0.05, slack_s=0.05)
    ahead = make_decoder("ahead", now, tpot_s=0.05, slack_s=0.40)
    other = make_decoder("other", now, tpot_s=0.15, slack_s=0.25)  # interval opens later
    step = plan(now, [on_time, ahead, other], [], PREDICTOR, make_config())
    assert step.tier_by_id["ahead"] > step.tier_by_id["on_time"]
    # No prompt waits for the time: the ahead ones ride along, after the one that is due.
    assert step.decode_ids == ("on_time", "other", "ahead")
    alone = plan(now, [ahead], [], PREDICTOR, make_config())
    assert alone.step_time_budget_s > step.step_time_budget_s


def test_ahead_of_schedule_decoders_wait_while_a_prompt_needs_their_time():
    now = 5.0
    decoders = [make_decoder("due", now, tpot_s=0.05, slack_s=0.05)] + [
        make_decoder(f"ahead{i}", now, tpot_s=0.15, slack_s=0.30) for i in range(16)
    ]

    def plan_with_prompt(ttft_s: float) -> StepPlan:
        prompt = make_request("prompt", arrival_s=now, ttft_s=ttft_s, num_prompt_tokens=1500)
        return plan(now, decoders, [prompt], PREDICTOR, make_config())

    # The tightest TTFT at which the new prompt is admitted: it has no time to give away.
    lo, hi = 0.1, 10.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if "prompt" in plan_with_prompt(mid).admitted_ids else (mid, hi)
    squeezed, roomy = plan_with_prompt(hi), plan_with_prompt(10 * hi)

    assert "prompt" in squeezed.admitted_ids
    assert squeezed.decode_ids == ("due",)
    assert set(roomy.decode_ids) == {d.request_id for d in decoders}
    assert roomy.prefill_tokens_by_id["prompt"] < squeezed.prefill_tokens_by_id["prompt"]


def test_a_planned_step_with_every_decode_it_lists_ends_by_its_time_budget():
    # The engines run the decodes the plan lists, riders included: the step must still end by
    # the earliest decode deadline (unless the due decodes alone overrun it: then no chunks).
    rng = np.random.default_rng(11)
    num_with_riders = 0
    for _ in range(40):
        now, running, waiting = random_instance(rng, 24, 8)
        step = plan(now, running, waiting, PREDICTOR, make_config())
        by_id = {r.request_id: r for r in (*running, *waiting)}
        decoders = [by_id[rid] for rid in step.decode_ids]
        chunks = step.prefill_tokens_by_id
        step_s = PREDICTOR.step_time_s(
            sum(chunks.values()),
            len(decoders),
            sum(r.num_context_tokens() for r in decoders),
            0,
            sum(chunk_context_tokens(by_id[i].num_computed_tokens, n) for i, n in chunks.items()),
        )
        assert step_s <= step.step_time_budget_s + 1e-9 or not chunks
        num_with_riders += any(_is_ahead(by_id[i], now, step) for i in step.decode_ids)
    assert num_with_riders > 0


def _is_ahead(request: PlanRequest, now_s: float, step: StepPlan) -> bool:
    """Whether the decoder's next token is due only after the step's budget ends."""
    origin = max(request.arrival_s + request.ttft_s, request.first_token_s or 0.0)
    due_s = origin + request.num_output_tokens * request.tpot_s * 1.05 - now_s
    return due_s - request.tpot_s * 1.05 > step.step_time_budget_s


def test_decodes_leave_the_rest_of_the_step_to_prefill_chunks_edf_first():
    now = 5.0
    decoders = [make_decoder(f"d{i}", now, tpot_s=0.05) for i in range(4)]
    first = make_request(
        "first", arrival_s=now, ttft_s=2.0, num_prompt_tokens=1000, is_admitted=True
    )
    second = make_request(
        "second", arrival_s=now, ttft_s=3.0, num_prompt_tokens=1000, is_admitted=True
    )
    step = plan(now, decoders, [second, first], PREDICTOR, make_config())
    assert set(step.decode_ids) == {f"d{i}" for i in range(4)}
    assert step.num_decode_tokens == 4
    assert 0 < step.prefill_tokens_by_id["first"] < 1000
    assert "second" not in step.prefill_tokens_by_id
    assert step.token_budget == 4 + step.prefill_tokens_by_id["first"]


def test_overloaded_old_set_is_kept_but_nothing_new_is_admitted():
    now = 5.0
    decoders = [make_decoder(f"d{i}", now, tpot_s=0.05) for i in range(64)]
    newcomer = make_request("new", arrival_s=now, ttft_s=10.0, num_prompt_tokens=16)
    step = plan(now, decoders, [newcomer], PREDICTOR, make_config())
    assert step.is_overloaded
    assert set(step.admitted_ids) == {d.request_id for d in decoders}
    assert step.reason_by_id == {"new": Rejection.OLD_INFEASIBLE}


def test_best_effort_request_is_promoted_once_room_frees_up():
    now = 5.0
    holder = make_decoder("holder", now, prompt=600, max_output_tokens=40)
    newcomer = make_request("new", arrival_s=now, ttft_s=5.0)
    config = make_config(kv_blocks_total=50)
    assert plan(now, [holder], [newcomer], PREDICTOR, config).best_effort_ids == ("new",)
    assert plan(now, [], [newcomer], PREDICTOR, config).newly_admitted_ids == ("new",)


def test_speculation_sets_per_tier_lengths_and_counts_verify_tokens():
    now = 5.0
    decoders = [make_decoder(f"d{i}", now, tpot_s=0.05) for i in range(8)]
    config = make_config(speculation=SpecConfig(max_spec_len=5, alpha=0.8))
    step = plan(now, decoders, [], PREDICTOR, config)
    spec_len = step.spec_len_by_tier[0]
    assert spec_len > 1
    assert step.num_decode_tokens == spec_len * len(step.decode_ids)
    assert plan(now, decoders, [], PREDICTOR, make_config()).spec_len_by_tier == {}


@settings(max_examples=100, deadline=None, database=None)
@given(instance_strategy(max_running=8, max_waiting=8))
def test_every_plan_keeps_old_admissions_and_fits_the_engine(instance):
    now, running, waiting, config = instance
    for name in PLANNERS:
        step = make_planner(name).plan(now, running, waiting, PREDICTOR, config)
        old = {r.request_id for r in [*running, *waiting] if r.is_admitted}
        assert old <= set(step.admitted_ids)
        by_id = {r.request_id: r for r in [*running, *waiting]}
        if not step.is_overloaded:
            blocks = sum(by_id[i].num_kv_blocks(config.block_size) for i in step.admitted_ids)
            assert blocks <= config.kv_blocks_total
            assert len(step.admitted_ids) <= config.max_num_seqs
        assert set(step.admitted_ids).isdisjoint(step.best_effort_ids)
        assert set(step.admitted_ids) | set(step.best_effort_ids) == set(by_id)
        _assert_step_fits(step, by_id, config)


def _assert_step_fits(step: StepPlan, by_id: dict[str, PlanRequest], config: PlannerConfig) -> None:
    prefill = step.prefill_tokens_by_id
    assert step.token_budget == step.num_decode_tokens + sum(prefill.values())
    assert step.token_budget <= config.max_num_batched_tokens
    assert 1 <= step.max_batch_size <= config.max_num_seqs
    assert set(prefill) <= set(step.admitted_ids)
    context = sum(by_id[i].num_context_tokens() for i in step.decode_ids)
    pairs = 0
    for request_id, chunk in prefill.items():
        request = by_id[request_id]
        assert 0 < chunk <= request.num_remaining_prompt_tokens
        pairs += chunk_context_tokens(request.num_computed_tokens, chunk)
    predicted = PREDICTOR.step_time_s(
        sum(prefill.values()), len(step.decode_ids), context, num_prefill_pairs=pairs
    )
    if prefill:
        assert predicted <= step.step_time_budget_s + 1e-9


def test_plan_is_deterministic():
    rng = np.random.default_rng(3)
    from .factories import random_instance

    now, running, waiting = random_instance(rng, 10, 10)
    config = make_config()
    assert plan(now, running, waiting, PREDICTOR, config) == plan(
        now, running, waiting, PREDICTOR, config
    )


def test_planner_never_imports_vllm_torch_or_ray():
    code = (
        "import sys, agentflow.planner as p; "
        "p.plan(0.0, [], [], p.StepTimePredictor.default_cpu(), "
        "p.PlannerConfig(kv_blocks_total=8, max_num_batched_tokens=64, max_num_seqs=4)); "
        "print(sorted(m for m in ('vllm', 'torch', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_empty_engine_plans_an_empty_step():
    step = plan(0.0, [], [], StepTimePredictor.default_cpu(), make_config())
    assert (step.admitted_ids, step.token_budget, step.num_decode_tokens) == ((), 0, 0)


def test_when_a_prompt_can_spare_some_time_the_earliest_due_ahead_decoders_ride():
    now = 5.0
    ahead = [
        make_decoder(f"ahead{i}", now, tpot_s=0.15, slack_s=0.30 + 0.01 * i, prompt=1024)
        for i in range(16)
    ]
    decoders = [make_decoder("due", now, tpot_s=0.05, slack_s=0.05), *ahead]

    def plan_with_prompt(ttft_s: float) -> StepPlan:
        prompt = make_request("prompt", arrival_s=now, ttft_s=ttft_s, num_prompt_tokens=1500)
        return plan(now, decoders, [prompt], PREDICTOR, make_config())

    lo, hi = 0.1, 10.0  # the tightest TTFT at which the prompt is admitted
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if "prompt" in plan_with_prompt(mid).admitted_ids else (mid, hi)
    num_riders = []
    for ttft_s in hi + np.linspace(0.0, 0.05, 26):  # a little more room each time
        step = plan_with_prompt(ttft_s)
        assert "prompt" in step.admitted_ids and step.decode_ids[0] == "due"
        riders = step.decode_ids[1:]
        # Earliest due first: the riders are a prefix of the ahead decoders by slack.
        assert riders == tuple(d.request_id for d in ahead[: len(riders)])
        num_riders.append(len(riders))
    assert num_riders == sorted(num_riders)  # more room, never fewer riders
    assert num_riders[0] == 0 and num_riders[-1] == len(ahead)
    assert any(0 < n < len(ahead) for n in num_riders)


def test_a_planner_that_keeps_no_prompt_margin_gets_the_same_riders():
    # The exact planner hands on no margin (`Admission.prompt_margin_s` is None); the layout
    # then works it out from a fresh ledger, and must reach the fast planner's decision.
    rng = np.random.default_rng(5)
    config = make_config()
    num_with_riders = 0
    for _ in range(40):
        now, running, waiting = random_instance(rng, 24, 8)
        problem = build_problem(now, running, waiting, PREDICTOR, config)
        admission = admit_greedy(problem, config)
        kept = build_step_plan(problem, admission, PREDICTOR, config)
        worked_out = build_step_plan(
            problem, replace(admission, prompt_margin_s=None), PREDICTOR, config
        )
        assert worked_out == kept
        by_id = {r.request_id: r for r in (*running, *waiting)}
        num_with_riders += any(_is_ahead(by_id[i], now, kept) for i in kept.decode_ids)
    assert num_with_riders > 0
