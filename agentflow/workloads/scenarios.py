"""The six scenarios of SLOs-Serve, with their SLO presets, lengths and arrival processes.

SLO presets (shared/reference/slos_serve.md §6, from the authors' `EASY_SLOS`; TTFT is a
slowdown of the prompt's isolated prefill time on the serving engine):

| scenario      | stages          | TTFT | TPOT                            | lengths, arrivals  |
|---------------|-----------------|------|---------------------------------|--------------------|
| chatbot       | chatbot         | 5x   | 100 ms                          | Azure conv trace   |
| coding        | coding          | 5x   | 50 ms                           | Azure code trace   |
| summarization | summarize       | 3x   | 100 ms                          | synthetic*, Poisson|
| mixed         | the three above | each | each                            | each component's   |
| tool_calling  | act ... final   | 3x   | 50 ms in the loop, 100 ms final | synthetic*, Poisson|
| reasoning     | think, answer   | 3x   | 50 ms thinking, 100 ms answer   | synthetic*, Poisson|

*The authors' arXiv-summary, ToolBench and reasoning length datasets are not available here.
The synthetic stand-ins are clipped log-normals whose parameters are stated in `shapes.py`;
treat results on them as indicative. The paper scores reasoning as one request
with a piecewise TPOT; here, as in `examples/reasoning.py`, thinking and answering are two
stage calls (the answer re-prefills question + thoughts) and a program meets its SLO only if
every stage call does. Tool calls are chains: each round arrives a tool delay after the
previous round's last token. Every arrival process can be swapped for Poisson or for bursts
from either Azure trace (`arrival=`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from agentflow.engine.sim.request import RequestSpec
from agentflow.errors import ConfigError
from agentflow.planner import StepTimePredictor
from agentflow.workloads.arrivals import ArrivalProcess, PoissonArrivals, TraceArrivals
from agentflow.workloads.azure import load_azure_trace
from agentflow.workloads.shapes import (
    MAX_OUTPUT_TOKENS,
    StageCall,
    clip_lengths,
    reasoning_shape,
    summarization_shape,
    tool_calling_shape,
)

__all__ = [
    "ARRIVAL_NAMES",
    "MAX_OUTPUT_TOKENS",
    "SCENARIO_NAMES",
    "AzureScenario",
    "MixedScenario",
    "ProgramArrival",
    "Scenario",
    "StageCall",
    "StageSLO",
    "SyntheticScenario",
    "build_trace",
    "get_scenario",
    "make_arrivals",
]


@dataclass(frozen=True, slots=True)
class StageSLO:
    """One stage's SLO preset."""

    ttft_slowdown: float
    """TTFT budget as a multiple of the prompt's isolated prefill time."""
    tpot_ms: float

    def ttft_s(self, predictor: StepTimePredictor, num_prompt_tokens: int) -> float:
        """The resolved TTFT budget for a prompt, in seconds."""
        return self.ttft_slowdown * predictor.isolated_prefill_s(num_prompt_tokens)


@dataclass(frozen=True, slots=True)
class ProgramArrival:
    """One program instance: when it starts and the calls it will make."""

    program_id: str
    arrival_s: float
    calls: tuple[StageCall, ...]


class Scenario(Protocol):
    """A workload: programs with stage SLOs, lengths and an arrival process."""

    @property
    def name(self) -> str:
        """Scenario name."""
        ...

    @property
    def description(self) -> str:
        """One line on what it models."""
        ...

    @property
    def slo_by_stage(self) -> Mapping[str, StageSLO]:
        """Stage name -> its SLO preset."""
        ...

    @property
    def default_arrival(self) -> str:
        """Arrival process used unless overridden."""
        ...

    def programs(
        self, n: int, rate_rps: float, rng: np.random.Generator, arrival: str | None = None
    ) -> list[ProgramArrival]:
        """`n` program instances arriving at mean rate `rate_rps`, sorted by arrival."""
        ...


ARRIVAL_NAMES = ("poisson", "azure_code", "azure_conv")


def make_arrivals(name: str, offset: int = 0) -> ArrivalProcess:
    """An arrival process by name: "poisson", "azure_code" or "azure_conv" (bursty).

    Raises:
        ConfigError: unknown name.
    """
    if name == "poisson":
        return PoissonArrivals()
    if name in ("azure_code", "azure_conv"):
        trace = load_azure_trace("code" if name == "azure_code" else "conv")
        return TraceArrivals(name, trace.arrival_s, offset)
    raise ConfigError(f"arrivals: unknown process {name!r}; choose one of {list(ARRIVAL_NAMES)}")


@dataclass(frozen=True, slots=True)
class AzureScenario:
    """A single-stage scenario whose lengths (and default arrivals) come from an Azure trace."""

    name: str
    kind: str
    """"code" or "conv"."""
    slo: StageSLO
    description: str
    start_s: float = 0.0
    """Where the window starts in the trace (SLOs-Serve: 1786 s for code, 900 s for conv)."""

    @property
    def slo_by_stage(self) -> Mapping[str, StageSLO]:
        """Its one stage, named like the scenario."""
        return {self.name: self.slo}

    @property
    def default_arrival(self) -> str:
        """The same trace's arrival times."""
        return f"azure_{self.kind}"

    def programs(
        self, n: int, rate_rps: float, rng: np.random.Generator, arrival: str | None = None
    ) -> list[ProgramArrival]:
        """A window of `n` trace rows: their lengths, and their (time-scaled) arrivals."""
        trace = load_azure_trace("code" if self.kind == "code" else "conv")
        offset = int(np.searchsorted(trace.arrival_s, self.start_s))
        window = TraceArrivals(self.default_arrival, trace.arrival_s, offset).window(n)
        times = make_arrivals(arrival or self.default_arrival, offset).times(n, rate_rps, rng)
        prompts, outputs = trace.prompt_tokens[window], trace.output_tokens[window]
        return [
            ProgramArrival(
                f"{self.name}-{i}",
                float(times[i]),
                (StageCall(self.name, *clip_lengths(int(prompts[i]), int(outputs[i]))),),
            )
            for i in range(n)
        ]


ShapeFn = Callable[[np.random.Generator, int], list[tuple[StageCall, ...]]]


@dataclass(frozen=True, slots=True)
class SyntheticScenario:
    """A scenario whose program shapes come from a sampling function."""

    name: str
    slo_by_stage: Mapping[str, StageSLO]
    shape: ShapeFn
    description: str
    default_arrival: str = "poisson"

    def programs(
        self, n: int, rate_rps: float, rng: np.random.Generator, arrival: str | None = None
    ) -> list[ProgramArrival]:
        """`n` sampled programs at the arrival process's times."""
        times = make_arrivals(arrival or self.default_arrival).times(n, rate_rps, rng)
        shapes = self.shape(rng, n)
        return [ProgramArrival(f"{self.name}-{i}", float(times[i]), shapes[i]) for i in range(n)]


@dataclass(frozen=True, slots=True)
class MixedScenario:
    """Several scenarios served together, each with an equal share of programs and rate."""

    name: str
    components: tuple[Scenario, ...]
    description: str
    default_arrival: str = "per-component"
    slo_by_stage: Mapping[str, StageSLO] = field(init=False)

    def __post_init__(self) -> None:
        merged: dict[str, StageSLO] = {}
        for component in self.components:
            merged.update(component.slo_by_stage)
        object.__setattr__(self, "slo_by_stage", merged)

    def programs(
        self, n: int, rate_rps: float, rng: np.random.Generator, arrival: str | None = None
    ) -> list[ProgramArrival]:
        """Each component's programs at rate/k, merged by arrival time."""
        k = len(self.components)
        merged: list[ProgramArrival] = []
        for index, component in enumerate(self.components):
            count = n // k + (1 if index < n % k else 0)
            if count:
                merged.extend(component.programs(count, rate_rps / k, rng, arrival))
        merged.sort(key=lambda p: (p.arrival_s, p.program_id))
        return merged


def _catalog() -> dict[str, Scenario]:
    coding = AzureScenario(
        "coding", "code", StageSLO(5.0, 50.0), "Azure code trace; loose TTFT, tight TPOT", 1786.0
    )
    chatbot = AzureScenario(
        "chatbot", "conv", StageSLO(5.0, 100.0), "Azure conversation trace; loose on both", 900.0
    )
    summarization = SyntheticScenario(
        "summarization",
        {"summarize": StageSLO(3.0, 100.0)},
        summarization_shape,
        "long prompts; tight TTFT, loose TPOT",
    )
    return {
        "chatbot": chatbot,
        "coding": coding,
        "summarization": summarization,
        "mixed": MixedScenario(
            "mixed", (coding, chatbot, summarization), "coding + chatbot + summarization"
        ),
        "tool_calling": SyntheticScenario(
            "tool_calling",
            {"act": StageSLO(3.0, 50.0), "final": StageSLO(3.0, 100.0)},
            tool_calling_shape,
            "tool loop: tight act rounds, loose final answer",
        ),
        "reasoning": SyntheticScenario(
            "reasoning",
            {"think": StageSLO(3.0, 50.0), "answer": StageSLO(3.0, 100.0)},
            reasoning_shape,
            "think (tight TPOT) then answer (loose)",
        ),
    }


SCENARIO_NAMES: tuple[str, ...] = (
    "chatbot",
    "coding",
    "summarization",
    "mixed",
    "tool_calling",
    "reasoning",
)


def get_scenario(name: str) -> Scenario:
    """The scenario called `name`.

    Raises:
        ConfigError: unknown name.
    """
    catalog = _catalog()
    try:
        return catalog[name]
    except KeyError:
        raise ConfigError(
            f"workloads: unknown scenario {name!r}; choose one of {list(SCENARIO_NAMES)}"
        ) from None


def build_trace(
    scenario: Scenario | str,
    rate_rps: float,
    num_programs: int,
    predictor: StepTimePredictor,
    *,
    seed: int = 0,
    arrival: str | None = None,
) -> list[RequestSpec]:
    """The simulator's requests for `num_programs` program instances at `rate_rps`.

    TTFT slowdowns are resolved with `predictor` (the serving engine's isolated prefill time).
    Request ids are `program:stage:iteration`, as the runtime names its stage calls.
    """
    if isinstance(scenario, str):
        scenario = get_scenario(scenario)
    rng = np.random.default_rng(seed)
    specs: list[RequestSpec] = []
    for program in scenario.programs(num_programs, rate_rps, rng, arrival):
        specs.extend(_program_requests(scenario, program, predictor))
    return specs


def _program_requests(
    scenario: Scenario, program: ProgramArrival, predictor: StepTimePredictor
) -> Sequence[RequestSpec]:
    requests: list[RequestSpec] = []
    iterations: dict[str, int] = {}
    previous: str | None = None
    for call in program.calls:
        slo = scenario.slo_by_stage[call.stage]
        iteration = iterations.get(call.stage, 0)
        iterations[call.stage] = iteration + 1
        request_id = f"{program.program_id}:{call.stage}:{iteration}"
        requests.append(
            RequestSpec(
                request_id=request_id,
                arrival_s=program.arrival_s,
                num_prompt_tokens=call.prompt_tokens,
                num_output_tokens=call.output_tokens,
                ttft_s=slo.ttft_s(predictor, call.prompt_tokens),
                tpot_s=slo.tpot_ms / 1e3,
                program_id=program.program_id,
                stage=call.stage,
                after_id=previous,
                delay_s=call.delay_s,
                num_shared_prefix_tokens=call.shared_prefix_tokens if previous else 0,
            )
        )
        previous = request_id
    return requests
