"""How the planner's verify lengths become per-request draft limits inside vLLM, and how the
acceptance the planner plans with is measured. No engine here: vLLM's `Request` is stood in
for by the few fields these functions read."""

from types import SimpleNamespace

import pytest

from agentflow.engine.vllm.planning import settings_for
from agentflow.engine.vllm.speculation import AcceptanceMeter, draft_limits, trim_drafts
from agentflow.planner import AffinePiece, StepPlan, StepTimePredictor


def _plan(admitted, tiers, spec_len_by_tier, best_effort=()):
    return StepPlan(
        admitted_ids=tuple(admitted),
        newly_admitted_ids=(),
        best_effort_ids=tuple(best_effort),
        prefill_tokens_by_id={},
        num_decode_tokens=len(admitted),
        token_budget=64,
        max_batch_size=8,
        step_time_budget_s=0.05,
        spec_len_by_tier=spec_len_by_tier,
        tpot_tiers_s=(0.05, 0.15),
        decode_ids=tuple(admitted),
        num_spare_tokens=0,
        tier_by_id=dict(zip(admitted, tiers, strict=True)),
    )


def _decoder(rid, drafts, prompt=40, output=5):
    return SimpleNamespace(
        request_id=rid,
        spec_token_ids=list(drafts),
        num_prompt_tokens=prompt,
        num_computed_tokens=prompt + output - 1,
        num_output_tokens=output,
    )


def test_admitted_requests_verify_their_tiers_length_and_best_effort_ones_verify_none():
    plan = _plan(["tight", "loose"], [0, 1], {0: 4, 1: 1}, best_effort=["spare"])
    limits = draft_limits(plan, ["tight", "loose", "spare"], max_drafts=3)
    assert limits == {"tight": 3, "loose": 0, "spare": 0}


def test_a_limit_never_exceeds_what_the_proposer_drafts():
    plan = _plan(["a"], [0], {0: 8})
    assert draft_limits(plan, ["a"], max_drafts=2) == {"a": 2}


def test_trimming_gives_a_new_list_and_leaves_the_old_one_alone():
    request = _decoder("a", [7, 8, 9])
    shared = request.spec_token_ids  # the async scheduler shares placeholder lists
    removed = trim_drafts([request], {"a": 1})
    assert request.spec_token_ids == [7] and removed == 2
    assert shared == [7, 8, 9]


def test_the_step_budget_holds_each_admitted_decoders_allowed_drafts():
    predictor = StepTimePredictor([AffinePiece(0.01, 1e-4, 1e-4, 0.0, 1e-4)])
    running = [_decoder("tight", [1, 2, 3]), _decoder("loose", [4, 5, 6])]
    plan = _plan(["tight", "loose"], [0, 1], {0: 3, 1: 1})
    limits = draft_limits(plan, ["tight", "loose"], max_drafts=3)
    common = {"running": running, "predictor": predictor, "max_tokens_cap": 512}
    without = settings_for(plan, max_spare_step_s=0.05, **common)
    with_drafts = settings_for(plan, max_spare_step_s=0.05, draft_limits=limits, **common)
    # Two decode tokens plus the tight decoder's two allowed drafts (of the three it holds).
    assert without.token_budget == 2
    assert with_drafts.token_budget == 4


def test_acceptance_is_measured_on_the_drafts_the_planner_allowed_and_follows_the_text():
    meter = AcceptanceMeter(prior=0.5, decay=0.99)
    for _ in range(500):
        meter.observe(num_allowed=3, num_accepted=3)  # every draft accepted
    assert meter.alpha > 0.95
    for _ in range(500):
        meter.observe(num_allowed=3, num_accepted=0)  # no n-gram match: nothing to verify
    assert meter.alpha < 0.1


def test_acceptance_follows_a_geometric_rate():
    meter = AcceptanceMeter(prior=0.5, prior_weight=1.0, decay=1.0)
    # alpha = 0.75 with 3 drafts: accepted 0/1/2/3 with probability 1/4, 3/16, 9/64, 27/64.
    for accepted, times in ((0, 16), (1, 12), (2, 9), (3, 27)):
        for _ in range(times):
            meter.observe(3, accepted)
    assert meter.alpha == pytest.approx(0.75, abs=0.01)


def test_a_prior_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="prior"):
        AcceptanceMeter(prior=1.0)


def test_a_profile_that_never_saw_a_draft_prices_one_like_a_decode():
    fitted = StepTimePredictor([AffinePiece(0.016, 5e-4, 7e-4, 3e-6, 0.0)])
    priced = fitted.with_drafts_priced()
    assert priced.step_time_s(0, 1, 100, num_spec_tokens=3) == pytest.approx(
        fitted.step_time_s(0, 1, 100) + 3 * 7e-4
    )
    measured = StepTimePredictor([AffinePiece(0.016, 5e-4, 7e-4, 3e-6, 2e-4)])
    assert measured.with_drafts_priced().pieces == measured.pieces
