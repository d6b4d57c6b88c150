"""Engine specs and pool settings (no Ray)."""

from functools import partial

import pytest

from agentflow.cluster import FactorySpec, Pool, PoolConfig, SimSpec
from agentflow.engine.interface import GenerationRequest
from agentflow.engine.sim import PolicyOptions, SimEngine, get_profile
from agentflow.errors import ConfigError, EngineError
from agentflow.planner import StepTimePredictor
from tests.cluster.fakes import SeatedEngine, seated_view


def test_pool_settings_are_validated_with_a_config_error_naming_the_field():
    with pytest.raises(ConfigError, match="num_replicas"):
        PoolConfig(num_replicas=0)
    with pytest.raises(ConfigError, match="routing"):
        PoolConfig(routing="random")
    with pytest.raises(ConfigError, match="max_waiting_best_effort"):
        PoolConfig(max_waiting_best_effort=0)


@pytest.mark.anyio
async def test_a_pool_must_be_started_before_it_streams():
    pool = Pool(FactorySpec("seated", SeatedEngine))
    request = GenerationRequest("r", "hi", 2, 100.0, 50.0, "p", "s", "t")
    with pytest.raises(EngineError, match="not started"):
        async for _ in pool.stream(request):
            pass
    await pool.shutdown()  # harmless before start


def test_sim_spec_builds_a_paced_sim_engine_and_reports_the_policys_planner_view():
    spec = SimSpec(profile="opt-7b-a100", options=PolicyOptions(max_step_s=0.2, num_replicas=4))
    engine = spec.build(0)
    view = spec.planner_view(engine)
    profile = get_profile("opt-7b-a100")

    assert isinstance(engine, SimEngine) and engine.config.options.num_replicas == 1
    assert view.config.kv_blocks_total == profile.kv_blocks_total
    assert view.config.horizon_s == 0.2
    assert view.predictor().pieces == StepTimePredictor(profile.pieces).pieces
    assert spec.make_prompt_counter()("three word prompt", True) == 3
    assert SimSpec(policy="vllm").planner_view(engine) is None


def test_factory_spec_builds_from_its_factory_with_the_given_view():
    spec = FactorySpec("seated", partial(SeatedEngine, num_seats=5), view=seated_view(5))
    engine = spec.build(3)
    assert isinstance(engine, SeatedEngine) and engine.num_seats == 5
    assert spec.planner_view(engine).config.max_num_seqs == 5


def test_a_vllm_pool_renders_a_conversation_with_the_models_chat_template_in_the_driver():
    from agentflow.cluster import VLLMSpec
    from agentflow.engine.vllm import VLLMEngineConfig
    from agentflow.models import resolve_model

    spec = VLLMSpec(VLLMEngineConfig(model=resolve_model(None)))  # SmolLM2: ChatML template
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a river."},
    ]
    text = spec.make_chat_renderer()(messages)
    assert "<|im_start|>system\nBe brief.<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    # The counter prices a one-turn prompt as exactly that rendering.
    one_turn = spec.make_chat_renderer()([{"role": "user", "content": "Name a river."}])
    tokenizer = spec._driver_tokenizer()
    assert spec.make_prompt_counter()("Name a river.", True) == len(tokenizer.encode(one_turn))


def test_engines_without_a_chat_template_get_role_lines():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    expected = "system: Be brief.\nuser: Hi\nassistant:"
    assert SimSpec().make_chat_renderer()(messages) == expected
    assert FactorySpec("seated", SeatedEngine).make_chat_renderer()(messages) == expected
