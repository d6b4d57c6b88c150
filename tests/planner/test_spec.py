import pytest

from agentflow.planner import SpecConfig, StepTimePredictor, choose_spec_lengths, expected_tokens

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
