import json
from pathlib import Path

import pytest

from agentflow.engine.sim import cpu_profile, get_profile, list_profiles
from agentflow.errors import ConfigError
from agentflow.planner import StepTimePredictor


def test_catalog_covers_the_issue_models_on_a100_and_h100():
    names = set(list_profiles())
    for model in ("opt-7b", "opt-13b", "opt-30b", "llama2-7b"):
        assert any(n.startswith(model) and "a100" in n for n in names), model
        assert any(n.startswith(model) and "h100" in n for n in names), model
    assert "cpu" in names


@pytest.mark.parametrize("name", list_profiles())
def test_every_profile_is_a_usable_predictor_with_a_source(name):
    profile = get_profile(name)
    predictor = profile.predictor()
    assert isinstance(predictor, StepTimePredictor)
    assert profile.source
    assert profile.kv_blocks_total > 0
    one = predictor.isolated_prefill_s(1000)
    assert 0 < predictor.isolated_prefill_s(100) < one < predictor.isolated_prefill_s(4000)
    assert predictor.step_time_s(0, 64, 64 * 1000) > predictor.step_time_s(0, 1, 1000)
    # round trip through the predictor's own JSON format
    assert StepTimePredictor.from_json(predictor.to_json()).pieces == predictor.pieces


def test_fitted_profiles_keep_the_authors_coefficients():
    piece = get_profile("opt-13b-a100-tp2").pieces[0]
    assert piece.per_prefill_token_s == pytest.approx(7.21e-5)
    assert piece.constant_s == pytest.approx(3.17e-2)
    assert len(get_profile("opt-7b-a100").pieces) == 2


def test_h100_is_faster_than_a100_and_more_gpus_are_faster():
    tokens = 2000
    a100 = get_profile("opt-13b-a100").predictor().isolated_prefill_s(tokens)
    h100 = get_profile("opt-13b-h100").predictor().isolated_prefill_s(tokens)
    tp2 = get_profile("opt-13b-a100-tp2").predictor().isolated_prefill_s(tokens)
    assert h100 < a100 and tp2 < a100


def test_cpu_profile_is_the_fitted_cpu_engine():
    assert cpu_profile().pieces == StepTimePredictor.default_cpu().pieces
    assert get_profile("cpu").max_num_batched_tokens == 512


def test_unknown_profile_names_the_choices():
    with pytest.raises(ConfigError, match="opt-13b-a100-tp2"):
        get_profile("gpt-5-tpu")


def test_a_derived_profile_prices_a_decodes_kv_read_as_measured_on_an_h100():
    # benchmarks/gpu_step_times.py on a real H100: CUDA-graph decodes of a Llama-2-7B shape.
    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    measured = json.loads((results / "gpu_step_times.json").read_text())["models"]
    for model_key in ("llama2-7b", "opt-7b"):
        piece = get_profile(f"{model_key}-h100").pieces[0]
        kv_read_ns = measured[model_key]["fitted"]["per_context_token_ns"]
        assert piece.per_context_token_s * 1e9 == pytest.approx(kv_read_ns, rel=0.2)
        # Attending a cached token in a decode reads its KV; a prefill pair is a few FLOPs.
        assert piece.pair_s < piece.per_context_token_s / 100
    # The authors' fitted form keeps one context price (their constants absorbed the reads).
    assert get_profile("opt-13b-h100").pieces[0].per_prefill_pair_s is None
