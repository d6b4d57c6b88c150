"""The scenarios as real agentflow programs, run by the runtime on a simulated engine.

Each scenario's program shapes (from `scenarios.py`) become inputs of an `@af.agent`: the
reasoning agent thinks then answers (the answer stage reads the question and the thoughts),
the tool-calling agent loops act -> tool -> act and ends with a final answer, and single-stage
scenarios call one stage. Prompts are filler words (`SimEngine` counts one token per word),
so every stage call has exactly the token counts of the fast simulator's request chain, and
the engine is told the oracle output lengths. `run_programs` replays a scenario on
`SimEngine` with a `VirtualClock`: programs start at their arrival times, tools sleep on the
virtual clock, and the engine's per-request outcomes (virtual time) are what gets scored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np

import agentflow as af
from agentflow.engine.interface import GenerationRequest
from agentflow.engine.sim import (
    PolicyOptions,
    RequestOutcome,
    SimEngine,
    SimEngineConfig,
    SimProfile,
    VirtualClock,
)
from agentflow.runtime import ProgramResult, Runtime
from agentflow.workloads.scenarios import (
    MAX_OUTPUT_TOKENS,
    ProgramArrival,
    Scenario,
    StageSLO,
    build_trace,
    get_scenario,
)

__all__ = ["ProgramRun", "agent_for", "program_inputs", "run_programs"]

Sleep = Callable[[float], Awaitable[None]]


def _words(n: int, word: str = "w") -> str:
    return " ".join([word] * max(1, n))


def _ttft(slo: StageSLO) -> str:
    return f"{slo.ttft_slowdown:g}x"


def _single_stage_agent(stage_name: str, slo: StageSLO) -> af.Agent:
    @af.stage(ttft=_ttft(slo), tpot_ms=slo.tpot_ms, max_tokens=MAX_OUTPUT_TOKENS, name=stage_name)
    def respond(prompt: str) -> str:
        return prompt

    @af.agent(name=f"{stage_name}_agent")
    async def single(ctx: af.Context, prompt: str) -> str:
        return await ctx.run(respond, prompt)

    return single


def _reasoning_agent(slo_by_stage: Mapping[str, StageSLO]) -> af.Agent:
    think_slo, answer_slo = slo_by_stage["think"], slo_by_stage["answer"]

    @af.stage(
        ttft=_ttft(think_slo),
        tpot_ms=think_slo.tpot_ms,
        max_tokens=MAX_OUTPUT_TOKENS,
        tier="tight",
    )
    def think(question: str) -> str:
        return question

    @af.stage(
        ttft=_ttft(answer_slo),
        tpot_ms=answer_slo.tpot_ms,
        max_tokens=MAX_OUTPUT_TOKENS,
        tier="loose",
    )
    def answer(question: str, think: str) -> str:
        return f"{question} {think}"

    @af.agent(name="reasoning")
    async def reasoning(ctx: af.Context, question: str) -> str:
        notes = await ctx.run(think, question)
        return await ctx.run(answer, question, notes)

    return reasoning


def _tool_calling_agent(slo_by_stage: Mapping[str, StageSLO]) -> af.Agent:
    act_slo, final_slo = slo_by_stage["act"], slo_by_stage["final"]

    @af.stage(
        ttft=_ttft(act_slo), tpot_ms=act_slo.tpot_ms, max_tokens=MAX_OUTPUT_TOKENS, tier="tight"
    )
    def act(context: str) -> str:
        return context

    @af.stage(
        ttft=_ttft(final_slo),
        tpot_ms=final_slo.tpot_ms,
        max_tokens=MAX_OUTPUT_TOKENS,
        tier="loose",
    )
    def final(context: str) -> str:
        return context

    @af.agent(name="tool_calling", extra_inputs=("context",))
    async def tool_calling(
        ctx: af.Context,
        system: str,
        observations: list[str],
        tool_delays_s: list[float],
        sleep: Sleep,
    ) -> str:
        context = system
        for observation, delay_s in zip(observations, tool_delays_s, strict=True):
            call = await ctx.run(act, context)
            await sleep(delay_s)  # the tool runs (on the simulated clock)
            context = f"{context} {call} {observation}"
        return await ctx.run(final, context)

    return tool_calling


def agent_for(scenario: Scenario, first_stage: str) -> af.Agent:
    """The agent that runs programs whose first stage call is `first_stage`."""
    slos = scenario.slo_by_stage
    if first_stage == "think":
        return _reasoning_agent(slos)
    if first_stage == "act":
        return _tool_calling_agent(slos)
    return _single_stage_agent(first_stage, slos[first_stage])


def program_inputs(program: ProgramArrival, sleep: Sleep) -> dict[str, Any]:
    """The agent inputs that reproduce `program`'s stage calls token for token."""
    calls = program.calls
    first = calls[0]
    if first.stage == "think":
        return {"question": _words(first.prompt_tokens)}
    if first.stage == "act":
        acts = calls[:-1]
        observations = []
        for current, following in zip(acts, calls[1:], strict=True):
            grown = following.prompt_tokens - current.prompt_tokens - current.output_tokens
            observations.append(_words(grown, "o"))
        return {
            "system": _words(first.prompt_tokens),
            "observations": observations,
            "tool_delays_s": [c.delay_s for c in calls[1:]],
            "sleep": sleep,
        }
    return {"prompt": _words(first.prompt_tokens)}


@dataclass(frozen=True, slots=True)
class ProgramRun:
    """What a program-level replay produced."""

    outcomes: tuple[RequestOutcome, ...]
    """Engine records per stage call, on the virtual clock (score these)."""
    results: tuple[ProgramResult, ...]
    """The runtime's results (wall-clock stage timings are ~0 on a virtual clock)."""
    end_s: float
    """Virtual time when the last program ended."""


def run_programs(
    scenario: Scenario | str,
    rate_rps: float,
    num_programs: int,
    profile: SimProfile,
    policy: str,
    *,
    options: PolicyOptions | None = None,
    seed: int = 0,
    arrival: str | None = None,
) -> ProgramRun:
    """Replay a scenario as agentflow programs through `Runtime` on a virtual-time `SimEngine`.

    The programs, arrival times and lengths are those of `build_trace` with the same
    arguments, so the result can be compared request by request with `simulate()`.
    """
    scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
    programs = scenario.programs(num_programs, rate_rps, np.random.default_rng(seed), arrival)
    trace = build_trace(
        scenario, rate_rps, num_programs, profile.predictor(), seed=seed, arrival=arrival
    )
    outputs = {spec.request_id: spec.num_output_tokens for spec in trace}
    if options is None:
        tightest_s = min(slo.tpot_ms for slo in scenario.slo_by_stage.values()) / 1e3
        options = PolicyOptions(tightest_tpot_s=tightest_s)
    return anyio.run(_replay, scenario, programs, outputs, profile, policy, options)


async def _replay(
    scenario: Scenario,
    programs: Sequence[ProgramArrival],
    outputs: Mapping[str, int],
    profile: SimProfile,
    policy: str,
    options: PolicyOptions,
) -> ProgramRun:
    clock = VirtualClock()

    def output_tokens(request: GenerationRequest) -> int:
        return outputs.get(request.request_id, request.max_tokens)

    config = SimEngineConfig(policy=policy, options=options, output_tokens=output_tokens)
    agents: dict[str, af.Agent] = {}
    results: list[ProgramResult] = []
    async with SimEngine(profile, config, clock=clock) as engine:
        runtime = Runtime(engine, ignore_eos=True)

        async def run_at(program: ProgramArrival) -> None:
            stage = program.calls[0].stage
            agent = agents.setdefault(stage, agent_for(scenario, stage))
            await clock.sleep_until(program.arrival_s)
            inputs = program_inputs(program, clock.sleep)
            results.append(await runtime.run_one(agent, inputs, program_id=program.program_id))

        async with anyio.create_task_group() as group:
            for program in programs:
                group.start_soon(run_at, program)
        end_s = clock.now_s()
        outcomes = tuple(engine.outcomes)
    return ProgramRun(outcomes=outcomes, results=tuple(results), end_s=end_s)
