"""Integration: with no profile for this machine, relative budgets follow its measured speed."""

import itertools
import statistics
import time

import pytest

from agentflow.engine.interface import GenerationRequest
from agentflow.engine.vllm import VLLMEngine, VLLMEngineConfig
from agentflow.planner import StepTimePredictor

pytestmark = [pytest.mark.anyio, pytest.mark.engine, pytest.mark.slow]


async def _lone_decode_gaps_ms(engine: VLLMEngine, num_tokens: int = 16) -> list[float]:
    """Times between the tokens of one request served alone, as the frontend sees them."""
    request = GenerationRequest.unconstrained("probe", "probe " * 60, num_tokens, label="test")
    stamps = []
    async for delta in engine.stream(request):
        stamps.extend([time.perf_counter()] * delta.num_tokens)
    # From the first token on: the first one also waited for the prefill.
    return [(b - a) * 1e3 for a, b in itertools.pairwise(stamps[1:])]


async def test_a_lone_decode_step_is_priced_at_what_the_engine_measured_not_the_packaged_profile(
    tiny_model_dir, monkeypatch, tmp_path
):
    monkeypatch.setenv("AGENTFLOW_PROFILES", str(tmp_path))  # no cached fit for this model
    # A packaged profile ten times too slow for this engine, so that following it shows.
    packaged = StepTimePredictor.default_cpu()

    def wrong_default(cls: type[StepTimePredictor]) -> StepTimePredictor:
        return StepTimePredictor(packaged.fitted_pieces, scale=10.0)

    monkeypatch.setattr(StepTimePredictor, "default_cpu", classmethod(wrong_default))
    config = VLLMEngineConfig(
        model=tiny_model_dir,
        load_format="dummy",
        kv_cache_mib=64,
        max_model_len=512,
        measure_speed=True,
    )
    async with VLLMEngine(config) as engine:
        measured_ms = statistics.median(await _lone_decode_gaps_ms(engine))
        priced_ms = engine.lone_decode_ms(64)
    wrong_ms = StepTimePredictor.default_cpu().lone_decode_s(64) * 1e3
    assert not measured_ms / 2 < wrong_ms < measured_ms * 2  # the test can tell them apart
    # A factor two allows for this shared VM's jitter between the two timings.
    assert measured_ms / 2 < priced_ms < measured_ms * 2
