"""The stages library: each building block runs in an agent and carries its documented SLO."""

import pytest

import agentflow as af
from stages import chat, code, reasoning, summarize, tool_loop
from stages.tool_loop import MalformedCall, ToolCall, parse_tool_call
from tests.fakes import FakeEngine
from tools.builtin import builtin_toolset
from tools.client import ToolClient
from tools.endpoint import HttpEndpoint
from tools.http_server import running_http_server

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("stage", "ttft", "tpot"),
    [
        (reasoning.think, "3x prefill", "3x decode"),
        (reasoning.answer, "5x prefill", "8x decode"),
        (summarize.summarize, "3x prefill", "8x decode"),
        (code.code, "5x prefill", "3x decode"),
        (chat.chat, "5x prefill", "8x decode"),
        (tool_loop.act, "3x prefill", "3x decode"),
        (tool_loop.final, "5x prefill", "8x decode"),
    ],
)
def test_each_stage_declares_its_documented_default_slo(stage, ttft, tpot):
    assert stage.spec.slo.describe_ttft() == ttft
    assert stage.spec.slo.describe_tpot() == tpot


async def test_single_stage_blocks_render_their_input_into_the_prompt():
    @af.agent
    async def trio(ctx: af.Context, text: str) -> list[str]:
        return [
            await ctx.run(summarize.summarize, text),
            await ctx.run(code.code, text),
            await ctx.run(chat.chat, text),
        ]

    engine = FakeEngine()
    result = await af.Runtime(engine).run_one(trio, {"text": "the input"})
    assert result.status == af.ProgramStatus.FINISHED
    assert all("the input" in r.prompt for r in engine.requests)
    assert [r.tier for r in engine.requests] == ["tight-ttft", "tight-tpot", "loose"]


async def test_reasoning_block_feeds_thoughts_to_the_answer():
    @af.agent(stages=reasoning.STAGES)
    async def reasoner(ctx: af.Context, question: str) -> str:
        return await reasoning.reason(ctx, question)

    engine = FakeEngine(replies={"think": ["because of scattering"], "answer": ["Rayleigh."]})
    result = await af.Runtime(engine).run_one(reasoner, {"question": "sky?"})
    assert result.output == "Rayleigh."
    assert "because of scattering" in engine.requests[1].prompt


def test_parse_tool_call_accepts_json_calls_and_flags_malformed_ones():
    tools = ["calculator"]
    call = parse_tool_call(
        'Sure: {"tool": "calculator", "arguments": {"expression": "2+3"}}', tools
    )
    assert call == ToolCall("calculator", {"expression": "2+3"})
    assert parse_tool_call("The answer is 5.", tools) is None
    assert isinstance(parse_tool_call('{"tool": "search", "arguments": {}}', tools), MalformedCall)
    assert isinstance(
        parse_tool_call('{"tool": "calculator", "arguments": 3}', tools), MalformedCall
    )
    assert isinstance(
        parse_tool_call('{"tool": "calculator", "arguments": {', tools), MalformedCall
    )


@af.agent(stages=tool_loop.STAGES, extra_inputs=tool_loop.EXTRA_INPUTS, deadline_ms=20_000)
async def tool_agent(ctx: af.Context, question: str) -> str:
    return await tool_loop.tool_loop(ctx, question, tools=["calculator"], max_iterations=3)


async def test_tool_loop_calls_a_real_tool_server_and_feeds_observations_back():
    replies = {
        "act": [
            '{"tool": "calculator", "arguments": {"expression": "6*7"',  # malformed first
            '{"tool": "calculator", "arguments": {"expression": "6*7"}}',
            "It is 42.",
        ],
        "final": ["42"],
    }
    engine = FakeEngine(replies=replies)
    async with (
        running_http_server(builtin_toolset()) as url,
        ToolClient([HttpEndpoint(url=url)]) as client,
    ):
        result = await af.Runtime(engine, tools=client).run_one(tool_agent, {"question": "6*7?"})
    assert result.status == af.ProgramStatus.FINISHED, result.error
    assert result.output == "42"
    act_prompts = [r.prompt for r in engine.requests if r.stage == "act"]
    assert "error: could not parse" in act_prompts[1]
    assert "Observation: 42" in act_prompts[2]
    (tool_call,) = result.tools
    assert tool_call.ok and tool_call.tool == "calculator" and tool_call.latency_ms > 0
    assert [rec.iteration for rec in result.stages if rec.stage == "act"] == [0, 1, 2]


async def test_tool_loop_ends_with_max_iterations_status_when_it_never_answers():
    engine = FakeEngine(replies={"act": ['{"tool": "nope"}'] * 3})
    result = await af.Runtime(engine).run_one(tool_agent, {"question": "?"})
    assert result.status == af.ProgramStatus.MAX_ITERATIONS
    assert "3 iterations" in (result.error or "")


async def test_tool_failure_becomes_an_observation_not_a_crash():
    replies = {"act": ['{"tool": "calculator", "arguments": {"expression": "1/0"}}', "done"]}
    engine = FakeEngine(replies=replies)
    async with (
        running_http_server(builtin_toolset()) as url,
        ToolClient([HttpEndpoint(url=url)]) as client,
    ):
        result = await af.Runtime(engine, tools=client).run_one(tool_agent, {"question": "?"})
    assert result.status == af.ProgramStatus.FINISHED
    assert "Observation: error:" in engine.requests[1].prompt
    assert result.tools[0].ok is False


async def test_calling_a_tool_without_tool_servers_fails_the_program_clearly():
    engine = FakeEngine(
        replies={"act": ['{"tool": "calculator", "arguments": {"expression": "1"}}']}
    )
    result = await af.Runtime(engine).run_one(tool_agent, {"question": "?"})
    assert result.status == af.ProgramStatus.FAILED
    assert "no tool servers" in (result.error or "")
