import pytest

from agentflow.planner import SpecConfig, StepTimePredictor, choose_spec_lengths, expected_tokens
from agentflow.planner.spec import planned_tokens

TIERS = (0.049, 0.149, 0.25)


def test_expected_tokens_follow_geometric_acceptance():
    assert expected_tokens(1, 0.8) == 1.0
    assert expected_tokens(3, 0.8) == pytest.approx(1 + 0.8 + 0.64)
    assert expected_tokens(4, 1.0) == 4.0


def test_tighter_tiers_get_longer_speculation():
    lengths = choose_spec_lengths(
        TIERS,
        [16, 16, 0],
        [16 * 300, 16 * 300, 0],
        StepTimePredictor.default_cpu(),
        SpecConfig(max_spec_len=6, alpha=0.8),
        max_batch_tokens=2048,
    )
    assert lengths[0] > 1
    assert lengths[0] >= lengths[1] >= lengths[2]


def test_speculation_is_off_without_decoders():
    lengths = choose_spec_lengths(
        TIERS,
        [0, 0, 0],
        [0, 0, 0],
        StepTimePredictor.default_cpu(),
        SpecConfig(max_spec_len=6),
        max_batch_tokens=2048,
    )
    assert lengths == {0: 1, 1: 1, 2: 1}


def test_per_tier_acceptance_is_used():
    never_accepted = SpecConfig(max_spec_len=6, alpha=0.8, alpha_by_tier={0: 0.0})
    lengths = choose_spec_lengths(
        TIERS,
        [16, 0, 0],
        [16 * 300, 0, 0],
        StepTimePredictor.default_cpu(),
        never_accepted,
        max_batch_tokens=2048,
    )
    assert lengths[0] == 1


def test_the_planner_counts_on_fewer_tokens_than_the_mean_yield():
    # alpha 0.6, 4 tokens: E = 2.18, but 40 % of verifies yield one token. Over the ~9
    # verifies of a 20-token SLO window the mean's 5 % quantile is about 1.54.
    assert planned_tokens(1, 0.6) == 1.0
    assert planned_tokens(4, 0.6) == pytest.approx(1.54, abs=0.01)
    assert 1.0 < planned_tokens(4, 0.6) < expected_tokens(4, 0.6)
    assert planned_tokens(4, 1.0) == 4.0  # always accepted: no spread
    # Longer drafts add spread faster than mean: past a point they promise less.
    assert planned_tokens(8, 0.6) < planned_tokens(4, 0.6)


def test_a_tier_without_decoders_gets_the_most_dependable_length_not_the_longest():
    lengths = choose_spec_lengths(
        TIERS,
        [0, 16, 0],
        [0, 16 * 300, 0],
        StepTimePredictor.default_cpu(),
        SpecConfig(max_spec_len=8, alpha=0.6),
        max_batch_tokens=2048,
    )
    dependable = max(range(1, 9), key=lambda n: planned_tokens(n, 0.6))
    assert lengths[0] <= dependable < 8


def test_the_drafter_is_priced_per_step_not_per_token():
    predictor = StepTimePredictor(StepTimePredictor.default_cpu().pieces, draft_step_s=0.004)
    plain = predictor.step_time_s(0, 32, 32 * 300, num_spec_tokens=96)
    assert predictor.step_time_s(
        0, 32, 32 * 300, num_spec_tokens=96, num_draft_steps=3
    ) == pytest.approx(plain + 3 * 0.004)
    restored = StepTimePredictor.from_json(predictor.to_json())
    assert restored.draft_step_s == 0.004
