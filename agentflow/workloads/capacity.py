"""Capacity search: the highest arrival rate a policy serves with > 90 % of programs on SLO.

Issue 3's rule, used everywhere: a program meets its SLO if every stage call does (by
`judge_slo`; best-effort calls are misses). A rate *passes* if attainment is above the target
and the queue drains within 20 s of the last deadline (every request finished by then).
Capacity is found by bisecting the rate, time-scaling one fixed window of the scenario's
arrivals (SLOs-Serve's method), to 5 % resolution: the bracket [lo, hi] ends with
hi / lo <= 1.05 and lo passing. Attainment is assumed to fall with the rate (monotone); the
search first walks the rate up (x2) or down (/2) to bracket the threshold. Started from a good
estimate, a shorter walk (`step`) brackets it in fewer probes: from a blind start the walk's
first probes are far from capacity, and on a real engine the low-rate ones take longest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from agentflow.engine.sim import (
    PolicyOptions,
    RequestOutcome,
    RequestSpec,
    SimProfile,
    Simulation,
    StopRule,
    make_deployment,
)
from agentflow.workloads.scenarios import Scenario, build_trace, get_scenario

__all__ = [
    "CapacityResult",
    "CapacitySettings",
    "ProbeResult",
    "bisect_capacity",
    "find_capacity",
    "policy_options_for",
    "probe",
    "score",
]

DRAIN_LIMIT_S = 20.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One simulated rate."""

    rate_rps: float
    attainment: float
    """Share of programs that met every stage SLO (best-effort = miss)."""
    is_drained: bool
    passed: bool
    num_programs: int
    num_best_effort: int = 0
    wall_s: float = 0.0
    is_stopped_early: bool = False


@dataclass(frozen=True, slots=True)
class CapacityResult:
    """Outcome of one bisection."""

    capacity_rps: float
    """Highest passing rate found (0 if even the lowest probed rate failed)."""
    probes: tuple[ProbeResult, ...]


@dataclass(frozen=True, slots=True)
class CapacitySettings:
    """How a capacity search runs."""

    num_programs: int = 600
    """Programs per probe (a fixed window, time-scaled to each rate)."""
    target: float = 0.9
    resolution: float = 0.05
    start_rps: float = 1.0
    min_rps: float = 0.01
    max_rps: float = 1024.0
    seed: int = 0
    arrival: str | None = None
    """Override the scenario's arrival process ("poisson", "azure_code", "azure_conv")."""
    num_replicas: int = 1
    early_stop: bool = True
    """Stop a probe once it cannot pass any more (more misses than the target allows)."""
    speculation: bool = False
    """Speculative decoding with the profile's draft model (`PolicyOptions.speculation`)."""


def score(outcomes: Sequence[RequestOutcome], target: float = 0.9) -> ProbeResult:
    """Attainment per program and the drain check (rate and timing left at 0)."""
    met_by_program: dict[str, bool] = {}
    last_deadline_s = -math.inf
    last_finish_s = -math.inf
    all_finished = True
    num_best_effort = 0
    for outcome in outcomes:
        key = outcome.program_id or outcome.request_id
        met_by_program[key] = met_by_program.get(key, True) and outcome.slo_met
        last_deadline_s = max(last_deadline_s, outcome.last_deadline_s)
        if outcome.finish_s is not None:
            last_finish_s = max(last_finish_s, outcome.finish_s)
        all_finished = all_finished and outcome.is_finished
        num_best_effort += outcome.is_best_effort
    num_programs = len(met_by_program)
    attainment = sum(met_by_program.values()) / num_programs if num_programs else 1.0
    drained = all_finished and last_finish_s <= last_deadline_s + DRAIN_LIMIT_S
    return ProbeResult(
        rate_rps=0.0,
        attainment=attainment,
        is_drained=drained,
        passed=drained and attainment > target,
        num_programs=num_programs,
        num_best_effort=num_best_effort,
    )


def probe(
    trace: Sequence[RequestSpec],
    policy: str,
    profile: SimProfile,
    options: PolicyOptions,
    *,
    rate_rps: float = 0.0,
    target: float = 0.9,
    early_stop: bool = True,
) -> ProbeResult:
    """Simulate one trace and score it."""
    started = time.perf_counter()
    num_programs = len({s.program_id or s.request_id for s in trace})
    max_missed = math.floor(num_programs * (1 - target)) if early_stop else None
    stop = StopRule(max_missed_programs=max_missed)
    simulation = Simulation(trace, make_deployment(policy, profile, options), stop)
    outcomes = simulation.run()
    result = score(outcomes, target)
    stopped = max_missed is not None and len(simulation.missed_programs) > max_missed
    return replace(
        result,
        rate_rps=rate_rps,
        wall_s=time.perf_counter() - started,
        passed=result.passed and not stopped,
        is_stopped_early=stopped,
    )


def bisect_capacity(
    evaluate: Callable[[float], ProbeResult],
    *,
    start_rps: float = 1.0,
    resolution: float = 0.05,
    min_rps: float = 0.01,
    max_rps: float = 1024.0,
    step: float = 2.0,
) -> CapacityResult:
    """Bracket then bisect (geometrically) the highest passing rate.

    Args:
        evaluate: runs one rate and says whether it passed.
        start_rps: first rate tried.
        resolution: stop when hi / lo <= 1 + resolution.
        min_rps: below this, capacity is reported as 0.
        max_rps: above this, the search stops (capacity = the last passing rate).
        step: the bracketing walk multiplies (or divides) the rate by this. From an estimate
            within a factor `step` of capacity, the bracket takes two probes and the bisection
            ceil(log2(log(step) / log(1 + resolution))) more.

    Raises:
        ValueError: `step` is not above 1, or `resolution` not positive.
    """
    if not step > 1.0:
        raise ValueError(f"the bracketing step must be above 1, got {step}")
    if not resolution > 0.0:
        raise ValueError(f"the resolution must be positive, got {resolution}")
    probes: list[ProbeResult] = []

    def run(rate: float) -> bool:
        result = evaluate(rate)
        probes.append(result)
        return result.passed

    lo, hi = start_rps, start_rps
    if run(start_rps):
        while hi < max_rps:
            hi = min(hi * step, max_rps)
            if not run(hi):
                break
            lo = hi
        else:
            return CapacityResult(lo, tuple(probes))
    else:
        while True:
            lo /= step
            if lo < min_rps:
                return CapacityResult(0.0, tuple(probes))
            if run(lo):
                break
            hi = lo
    while hi / lo > 1 + resolution:
        mid = math.sqrt(lo * hi)
        if run(mid):
            lo = mid
        else:
            hi = mid
    return CapacityResult(lo, tuple(probes))


def policy_options_for(scenario: Scenario, settings: CapacitySettings) -> PolicyOptions:
    """The simulated engines' options for a capacity search.

    Sarathi-Serve's budget is tuned to the scenario's tightest TPOT. agentflow keeps the
    default horizon: its steps are bounded by the budgets of recent arrivals (`StepBound`:
    at most two of the tightest TPOT) and go past that only to admit more
    (`plan_within_bound`). Replicas, seed and speculation come from `settings`.
    """
    tightest_s = min(slo.tpot_ms for slo in scenario.slo_by_stage.values()) / 1e3
    return PolicyOptions(
        num_replicas=settings.num_replicas,
        tightest_tpot_s=tightest_s,
        seed=settings.seed,
        speculation=settings.speculation,
    )


def find_capacity(
    scenario: Scenario | str,
    policy: str,
    profile: SimProfile,
    settings: CapacitySettings | None = None,
) -> CapacityResult:
    """Capacity of `policy` on `scenario` with `profile` (see the module docstring)."""
    settings = settings or CapacitySettings()
    scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
    predictor = profile.predictor()
    options = policy_options_for(scenario, settings)

    def evaluate(rate_rps: float) -> ProbeResult:
        trace = build_trace(
            scenario,
            rate_rps,
            settings.num_programs,
            predictor,
            seed=settings.seed,
            arrival=settings.arrival,
        )
        return probe(
            trace,
            policy,
            profile,
            options,
            rate_rps=rate_rps,
            target=settings.target,
            early_stop=settings.early_stop,
        )

    return bisect_capacity(
        evaluate,
        start_rps=settings.start_rps,
        resolution=settings.resolution,
        min_rps=settings.min_rps,
        max_rps=settings.max_rps,
    )
