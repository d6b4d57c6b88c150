from agentflow.planner import AffinePiece, SpareBudget, StepTimePredictor, spare_step_limit_s


def _predictor(constant_s: float, prefill_s: float, decode_s: float) -> StepTimePredictor:
    return StepTimePredictor([AffinePiece(constant_s, prefill_s, decode_s, 0.0, prefill_s)])


def test_spare_work_stays_within_the_tightest_tpot_on_a_fast_engine():
    predictor = _predictor(0.010, 1e-4, 1e-4)
    assert spare_step_limit_s(predictor, 0.05) == 0.05


def test_spare_work_may_take_the_step_overhead_when_the_tpot_is_below_it():
    predictor = _predictor(0.053, 9.2e-3, 9e-4)
    assert spare_step_limit_s(predictor, 0.05) == 1.5 * predictor.base_s


def test_a_decode_is_priced_as_a_decode_not_as_a_prompt_token():
    # Prompt tokens cost ten decodes: 5 prompt tokens of room seats about 50 decoders.
    predictor = _predictor(0.050, 1e-2, 1e-3)
    budget = SpareBudget(predictor, limit_s=0.1, max_tokens=1000)
    assert budget.prefill_tokens() == 5
    seated = 0
    while budget.fits_decode(0):
        budget.add_decode(0)
        seated += 1
    assert seated == 50
    assert budget.prefill_tokens() == 0


def test_the_plans_spare_tokens_bound_the_work_too():
    predictor = _predictor(0.010, 1e-5, 1e-5)
    budget = SpareBudget(predictor, limit_s=1.0, max_tokens=3)
    budget.add_decode(0)
    assert budget.prefill_tokens() == 2
    budget.add_prefill(2)
    assert not budget.fits_decode(0)
    assert budget.prefill_tokens() == 0


def test_work_already_in_the_step_counts_against_the_limit():
    predictor = _predictor(0.010, 1e-3, 1e-3)
    empty = SpareBudget(predictor, limit_s=0.05, max_tokens=1000)
    half_full = SpareBudget(predictor, limit_s=0.05, max_tokens=1000, num_prefill_tokens=20)
    assert empty.prefill_tokens() == 40
    assert half_full.prefill_tokens() == 20


def test_a_decode_that_verifies_drafts_is_priced_with_them():
    # A decode and a draft token cost 1 ms each beside a 10 ms step overhead.
    predictor = _predictor(0.010, 1e-3, 1e-3)
    plain = SpareBudget(predictor, limit_s=0.0505, max_tokens=1000)
    speculative = SpareBudget(predictor, limit_s=0.0505, max_tokens=1000)
    assert plain.take_decodes([(0, 0)] * 100) == 40
    assert speculative.take_decodes([(0, 3)] * 100) == 10


def test_drafts_take_tokens_of_the_plans_spare_budget():
    budget = SpareBudget(_predictor(0.010, 1e-6, 1e-6), limit_s=1.0, max_tokens=5)
    assert not budget.fits_decode(0, num_drafts=5)
    assert budget.fits_decode(0, num_drafts=4)
    budget.add_decode(0, num_drafts=4)
    assert budget.tokens_left == 0 and budget.prefill_tokens() == 0
