"""Every example program validates, shows its graph, and runs on the real engine (SmolLM2)."""

import contextlib
from pathlib import Path

import pytest

import agentflow as af
from agentflow.cli import main
from agentflow.engine.vllm import VLLMEngine, VLLMEngineConfig
from agentflow.models import resolve_model
from agentflow.program.loader import load_program

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAMES = ["chatbot", "coding", "summarization", "mixed", "tool_calling", "reasoning"]


@pytest.mark.parametrize("name", NAMES)
def test_example_loads_and_its_graph_lists_every_stage(name, capsys, tmp_path):
    program = load_program(EXAMPLES / f"{name}.py")
    (agent,) = program.agents
    dot = tmp_path / "graph.dot"
    assert main(["graph", str(EXAMPLES / f"{name}.py"), "--dot", str(dot)]) == 0
    out = capsys.readouterr().out
    for stage in agent.stages:
        assert stage.name in out
        assert f'"{stage.name}"' in dot.read_text()
    assert "TPOT" in out


def test_graph_shows_the_reasoning_edge():
    agent = load_program(EXAMPLES / "reasoning.py").agents[0]
    assert list(agent.graph.edges) == [("think", "answer")]


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
async def smollm2():
    engine = VLLMEngine(VLLMEngineConfig(model=resolve_model(None), kv_cache_mib=256))
    await engine.start()
    yield engine
    await engine.shutdown()


@pytest.mark.anyio
@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
async def test_example_runs_on_the_default_model(name, smollm2):
    program = load_program(EXAMPLES / f"{name}.py")
    agent = program.agents[0]
    async with contextlib.AsyncExitStack() as stack:
        tools = None
        if program.tool_client is not None:
            tools = await stack.enter_async_context(program.tool_client())
        result = await af.Runtime(smollm2, tools=tools).run_one(agent, {})
    # A 135M model may loop on tools until the limit; anything else must finish cleanly.
    allowed = {af.ProgramStatus.FINISHED}
    if name == "tool_calling":
        allowed.add(af.ProgramStatus.MAX_ITERATIONS)
    assert result.status in allowed, result.error
    assert result.stages and all(rec.output_tokens > 0 for rec in result.stages)
    assert all(rec.status == "finished" for rec in result.stages)
