"""How one plan becomes the token budget and sat-out requests of one vLLM step. No engine here:
vLLM's `Request` is stood in for by the few fields `settings_for` reads."""

import dataclasses
from types import SimpleNamespace

from agentflow.engine.vllm.planning import settings_for
from agentflow.planner import AffinePiece, StepPlan, StepTimePredictor


def _plan_with_nothing_admitted(num_spare_tokens: int) -> StepPlan:
    return StepPlan(
        admitted_ids=(),
        newly_admitted_ids=(),
        best_effort_ids=(),
        prefill_tokens_by_id={},
        num_decode_tokens=0,
        token_budget=num_spare_tokens,
        max_batch_size=64,
        step_time_budget_s=1.0,
        spec_len_by_tier={},
        tpot_tiers_s=(),
        decode_ids=(),
        num_spare_tokens=num_spare_tokens,
        tier_by_id={},
    )


def _decoder(rid: str, prompt: int = 60, output: int = 5) -> SimpleNamespace:
    return SimpleNamespace(
        request_id=rid,
        spec_token_ids=[],
        num_prompt_tokens=prompt,
        num_computed_tokens=prompt + output - 1,
        num_output_tokens=output,
    )


def _best_effort_step(predictor, running, *, spare_tokens, max_tokens_cap):
    """The settings of a step where nothing is admitted and the tightest TPOT is 50 ms."""
    return settings_for(
        _plan_with_nothing_admitted(spare_tokens),
        running=running,
        predictor=predictor,
        max_spare_step_s=0.05,
        max_tokens_cap=max_tokens_cap,
    )


def test_best_effort_work_still_runs_when_an_empty_step_exceeds_the_tightest_tpot():
    # Fitted on a slow machine: a 53 ms empty step, a prompt token ten times a decode.
    slow = StepTimePredictor([AffinePiece(0.053, 9.2e-3, 9.09e-4, 0.0, 9.2e-3)])
    running = [_decoder(f"d{i}") for i in range(6)]
    settings = _best_effort_step(slow, running, spare_tokens=512, max_tokens_cap=512)
    # Every best-effort decoder runs and prompts get tokens too (was: a one-token budget).
    assert settings.hidden_ids == frozenset()
    assert settings.token_budget > len(running)


def test_best_effort_work_keeps_a_fast_engines_step_within_the_tightest_tpot():
    fast = StepTimePredictor([AffinePiece(0.010, 1e-4, 5e-4, 0.0, 1e-4)])
    running = [_decoder(f"d{i}") for i in range(100)]
    settings = _best_effort_step(fast, running, spare_tokens=4096, max_tokens_cap=8192)
    # 40 ms of room: 80 decoders at 0.5 ms each; the other 20 sit this step out.
    assert len(settings.hidden_ids) == 20
    assert settings.token_budget == 80


def test_ahead_of_schedule_admitted_decoders_ride_along_only_within_the_plans_time_budget():
    fast = StepTimePredictor([AffinePiece(0.010, 1e-4, 5e-4, 0.0, 1e-4)])
    running = [_decoder(f"d{i}") for i in range(40)]
    plan = dataclasses.replace(
        _plan_with_nothing_admitted(4096),
        admitted_ids=tuple(r.request_id for r in running),
        decode_ids=("d0",),  # due; the other 39 are ahead of schedule
        num_decode_tokens=1,
        step_time_budget_s=0.020,  # d0's next token is due in 20 ms
    )
    settings = settings_for(
        plan, running=running, predictor=fast, max_spare_step_s=0.05, max_tokens_cap=8192
    )
    # 10 ms of room after the empty step: 20 decoders at 0.5 ms, d0 first; the rest sit out
    # instead of pushing the step past d0's deadline.
    assert settings.hidden_ids == frozenset(f"d{i}" for i in range(20, 40))
    assert settings.token_budget == 20
    assert settings.decode_rank_by_id["d0"] == 0


def test_ahead_of_schedule_decoders_that_verify_drafts_are_priced_with_their_drafts():
    fast = StepTimePredictor([AffinePiece(0.010, 1e-4, 5e-4, 0.0, 1e-4)])
    running = [_decoder(f"d{i}") for i in range(40)]
    for request in running:
        request.spec_token_ids = [7, 7, 7, 7]
    plan = dataclasses.replace(
        _plan_with_nothing_admitted(4096),
        admitted_ids=tuple(r.request_id for r in running),
        decode_ids=("d0",),
        num_decode_tokens=1,
        step_time_budget_s=0.020,
    )
    settings = settings_for(
        plan,
        running=running,
        predictor=fast,
        max_spare_step_s=0.05,
        max_tokens_cap=8192,
        draft_limits={r.request_id: 3 for r in running},
    )
    # Each decode verifies 3 of its drafts: 0.5 ms + 3 x 0.1 ms. d0 is in the plan; 10 ms of
    # room seats it and 11 more (12 x 0.8 = 9.6 ms), where pricing them as one-token decodes
    # seated 19 more and ran the step 6 ms past d0's deadline. The last 0.4 ms is 4 prompt
    # tokens of spare room.
    assert settings.hidden_ids == frozenset(f"d{i}" for i in range(12, 40))
    assert settings.token_budget == 12 * 4 + 4
