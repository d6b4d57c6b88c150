import pytest

from agentflow.errors import ConfigError
from agentflow.planner import PlannerConfig, SpecConfig, make_planner, plan

from .factories import PREDICTOR, make_config, make_request


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kv_blocks_total", 0),
        ("block_size", -16),
        ("max_num_batched_tokens", 0),
        ("max_num_seqs", 0),
        ("planner", "optimal"),
        ("horizon_s", 0.0),
        ("tier_margin_s", -0.001),
    ],
)
def test_bad_planner_config_raises_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        make_config(**{field: value})


def test_unknown_config_field_is_rejected():
    with pytest.raises(ConfigError, match="kv_blocks"):
        make_config(kv_blocks=10)


def test_bad_speculation_settings_name_the_field():
    with pytest.raises(ConfigError, match="alpha"):
        SpecConfig(max_spec_len=4, alpha=1.5)
    with pytest.raises(ConfigError, match="SpecConfig: max_spec_len"):
        make_config(speculation={"max_spec_len": 0})


def test_batch_token_cap_must_cover_the_sequence_cap():
    with pytest.raises(ConfigError, match="max_num_seqs"):
        make_config(max_num_seqs=4096, max_num_batched_tokens=2048)


def test_valid_config_keeps_defaults():
    config = PlannerConfig(kv_blocks_total=100, max_num_batched_tokens=512, max_num_seqs=8)
    assert (config.planner, config.block_size, config.horizon_s) == ("fast", 16, 1.0)
    assert config.speculation is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ttft_s", 0.0),
        ("tpot_s", -0.05),
        ("num_prompt_tokens", -1),
        ("num_output_tokens", -2),
        ("max_output_tokens", 0),
        ("num_computed_tokens", 9999),
    ],
)
def test_bad_request_raises_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        make_request(**{field: value})


def test_unknown_planner_name_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown planner"):
        make_planner("greedy")


def test_duplicate_request_ids_are_a_config_error():
    with pytest.raises(ConfigError, match="unique"):
        plan(0.0, [make_request("r")], [make_request("r")], PREDICTOR, make_config())
