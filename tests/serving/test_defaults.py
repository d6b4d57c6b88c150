"""What a request that names no SLO gets: the server's default budgets, relative or absolute."""

import pytest

from agentflow.metrics.prometheus import ServingMetrics
from agentflow.serving import CompletionService, ServeDefaults
from agentflow.serving.schema import CompletionRequest
from tests.fakes import FakeEngine

pytestmark = pytest.mark.anyio


def _service(engine: FakeEngine, defaults: ServeDefaults) -> CompletionService:
    return CompletionService(engine, model_name="fake", defaults=defaults, metrics=ServingMetrics())


async def test_a_relative_default_tpot_resolves_against_the_engines_lone_decode_step():
    engine = FakeEngine()
    service = _service(engine, ServeDefaults(tpot="4x"))
    reply = await service.respond(service.prepare(CompletionRequest(prompt="a b c", max_tokens=3)))
    context = reply["usage"]["prompt_tokens"] + 3
    assert reply["agentflow"]["tpot_budget_ms"] == pytest.approx(4 * engine.lone_decode_ms(context))


async def test_a_request_of_its_own_overrides_the_default():
    service = _service(FakeEngine(), ServeDefaults(tpot="4x"))
    body = CompletionRequest(prompt="a b c", max_tokens=3, tpot_ms=70)
    reply = await service.respond(service.prepare(body))
    assert reply["agentflow"]["tpot_budget_ms"] == 70


@pytest.mark.parametrize(
    ("defaults", "field"),
    [
        ({"tpot": 0.0}, "tpot_ms"),
        ({"tpot": "0.5x"}, "tpot_slowdown"),
        ({"tpot": "soon"}, "tpot must be milliseconds"),
        ({"ttft": -3}, "ttft_ms"),
    ],
)
def test_bad_defaults_are_refused_naming_the_budget(defaults, field):
    with pytest.raises(ValueError, match=field):
        ServeDefaults(**defaults)
