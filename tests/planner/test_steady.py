"""A steady decode stretch reuses its plan; any change that could alter the plan replans."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agentflow.planner import (
    PlanRequest,
    SpecConfig,
    SteadyPlanner,
    StepTimePredictor,
    make_planner,
    plan_within_bound,
)

from .factories import PREDICTOR, make_config, make_decoder, make_request

CONFIG = make_config(horizon_s=0.2)
STEP_S = 0.02


class _CountingPlanner:
    def __init__(self) -> None:
        self.calls = 0

    def plan(self, now_s, running, waiting, predictor, config):
        self.calls += 1
        return make_planner("fast").plan(now_s, running, waiting, predictor, config)


def _decoders(now_s: float = 1.0) -> list[PlanRequest]:
    return [make_decoder(f"d{i}", now_s, tpot_s=0.05, max_output_tokens=200) for i in range(3)]


def _one_step_on(running: list[PlanRequest]) -> list[PlanRequest]:
    """Every decoder got one more token."""
    return [replace(r, num_output_tokens=r.num_output_tokens + 1) for r in running]


def _steady(config=CONFIG) -> tuple[SteadyPlanner, _CountingPlanner]:
    counting = _CountingPlanner()
    return SteadyPlanner(counting), counting


def test_a_steady_stretch_reuses_the_plan_until_the_reuse_limit():
    steady, counting = _steady()
    now_s, running = 1.0, _decoders()
    first = steady.plan(now_s, running, [], PREDICTOR, CONFIG, CONFIG)
    assert set(first.decode_ids) == {"d0", "d1", "d2"}
    plans = []
    for _ in range(CONFIG.max_plan_reuses + 1):
        now_s, running = now_s + STEP_S, _one_step_on(running)
        plans.append(steady.plan(now_s, running, [], PREDICTOR, CONFIG, CONFIG))
    assert counting.calls == 2  # the first plan, and one after `max_plan_reuses` reuses
    assert steady.num_reused == CONFIG.max_plan_reuses
    assert all(p.decode_ids == first.decode_ids for p in plans)


def test_what_a_steady_stretch_reuses_is_what_planning_again_would_give():
    steady, _ = _steady()
    now_s, running = 1.0, _decoders()
    for _ in range(20):
        reused = steady.plan(now_s, running, [], PREDICTOR, CONFIG, CONFIG)
        fresh = plan_within_bound(
            make_planner("fast"), now_s, running, [], PREDICTOR, CONFIG, CONFIG
        )
        assert reused.admitted_ids == fresh.admitted_ids
        assert set(reused.decode_ids) == set(fresh.decode_ids)
        assert reused.prefill_tokens_by_id == fresh.prefill_tokens_by_id == {}
        assert reused.best_effort_ids == fresh.best_effort_ids == ()
        now_s, running = now_s + STEP_S, _one_step_on(running)
    assert steady.num_reused > steady.num_fresh


def test_no_plan_is_reused_when_reuse_is_off():
    config = make_config(horizon_s=0.2, max_plan_reuses=0)
    steady, counting = _steady()
    now_s, running = 1.0, _decoders()
    for _ in range(5):
        steady.plan(now_s, running, [], PREDICTOR, config, config)
        now_s, running = now_s + STEP_S, _one_step_on(running)
    assert counting.calls == 5


def test_no_plan_is_reused_while_speculating():
    # Verify lengths follow each decoder's tier, which follows its slack: it moves every step.
    config = make_config(horizon_s=0.2, speculation=SpecConfig(max_spec_len=4, alpha=0.7))
    steady, counting = _steady()
    now_s, running = 1.0, _decoders()
    for _ in range(5):
        step = steady.plan(now_s, running, [], PREDICTOR, config, config)
        assert step.spec_len_by_tier, "the admitted decoders' tiers got verify lengths"
        now_s, running = now_s + STEP_S, _one_step_on(running)
    assert counting.calls == 5


def _after_one_steady_plan():
    steady, counting = _steady()
    running = _decoders()
    steady.plan(1.0, running, [], PREDICTOR, CONFIG, CONFIG)
    return steady, counting, _one_step_on(running)


@pytest.mark.parametrize(
    "change",
    [
        "an arrival waits",
        "a request finished",
        "a request joined the running set",
        "a request was demoted",
        "the step bound moved",
        "the step-time model was replaced",
    ],
)
def test_any_change_that_could_alter_the_plan_makes_a_fresh_one(change):
    steady, counting, running = _after_one_steady_plan()
    waiting: list[PlanRequest] = []
    bounded, predictor = CONFIG, PREDICTOR
    if change == "an arrival waits":
        waiting = [make_request("new", arrival_s=1.0)]
    elif change == "a request finished":
        running = running[1:]
    elif change == "a request joined the running set":
        running = [*running, make_decoder("d9", 1.0 + STEP_S)]
    elif change == "a request was demoted":
        running = [replace(running[0], is_admitted=False), *running[1:]]
    elif change == "the step bound moved":
        bounded = CONFIG.model_copy(update={"horizon_s": 0.1})
    else:
        predictor = StepTimePredictor.default_cpu()
    steady.plan(1.0 + STEP_S, running, waiting, predictor, bounded, CONFIG)
    assert counting.calls == 2
    assert steady.num_reused == 0


def test_a_plan_that_prefills_is_never_reused():
    steady, counting = _steady()
    prompt = make_request("p", arrival_s=1.0, num_prompt_tokens=2000, is_admitted=True)
    now_s, running = 1.0, [*_decoders(), prompt]
    for _ in range(3):
        step = steady.plan(now_s, running, [], PREDICTOR, CONFIG, CONFIG)
        assert step.prefill_tokens_by_id, "the prompt is prefilled in chunks"
        done = step.prefill_tokens_by_id["p"]
        running = [
            *_one_step_on(running[:-1]),
            replace(running[-1], num_computed_tokens=running[-1].num_computed_tokens + done),
        ]
        now_s += STEP_S
    assert counting.calls == 3


def test_a_newly_admitted_request_is_reported_new_only_by_the_plan_that_admitted_it():
    steady, _ = _steady()
    # A decoder served best-effort so far, now admitted by the plan.
    promoted = make_decoder("b", 1.0, is_admitted=False)
    running = [*_decoders(), promoted]
    first = steady.plan(1.0, running, [], PREDICTOR, CONFIG, CONFIG)
    assert first.newly_admitted_ids == ("b",)
    running = [replace(r, is_admitted=True) for r in _one_step_on(running)]
    again = steady.plan(1.0 + STEP_S, running, [], PREDICTOR, CONFIG, CONFIG)
    assert steady.num_reused == 1
    assert again.newly_admitted_ids == ()
    assert "b" in again.admitted_ids
