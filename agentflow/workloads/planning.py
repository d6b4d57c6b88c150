"""Capacity planning: how many replicas a policy needs to serve a scenario at a given rate.

Replicas of the profile share the arrivals round robin (each runs its own scheduler and, for
agentflow, its own best-effort lane). A replica count passes if the simulated run meets the
capacity rule (attainment > target, queue drained within 20 s of the last deadline). Passing
is assumed monotone in the replica count: the search doubles, then bisects.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from agentflow.engine.sim import POLICY_NAMES, PolicyOptions, SimProfile, get_profile
from agentflow.workloads.capacity import CapacitySettings, ProbeResult, probe
from agentflow.workloads.scenarios import SCENARIO_NAMES, Scenario, build_trace, get_scenario

__all__ = ["ReplicaPlan", "plan_replicas", "run_plan_cli"]


@dataclass(frozen=True, slots=True)
class ReplicaPlan:
    """The answer of `plan_replicas`."""

    num_replicas: int | None
    """Smallest passing replica count (None: not even `max_replicas` pass)."""
    num_gpus: int | None
    probes: dict[int, ProbeResult]
    """replica count -> its simulated run."""


def plan_replicas(
    scenario: Scenario | str,
    rate_rps: float,
    profile: SimProfile,
    policy: str = "agentflow",
    *,
    settings: CapacitySettings | None = None,
    max_replicas: int = 64,
) -> ReplicaPlan:
    """Smallest number of `profile` replicas with which `policy` serves `rate_rps`."""
    settings = settings or CapacitySettings()
    scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
    tightest_s = min(slo.tpot_ms for slo in scenario.slo_by_stage.values()) / 1e3
    trace = build_trace(
        scenario,
        rate_rps,
        settings.num_programs,
        profile.predictor(),
        seed=settings.seed,
        arrival=settings.arrival,
    )
    probes: dict[int, ProbeResult] = {}

    def passes(num_replicas: int) -> bool:
        options = PolicyOptions(
            num_replicas=num_replicas,
            tightest_tpot_s=tightest_s,
            seed=settings.seed,
        )
        probes[num_replicas] = probe(
            trace, policy, profile, options, rate_rps=rate_rps, target=settings.target
        )
        return probes[num_replicas].passed

    hi = 1
    while not passes(hi):
        if hi >= max_replicas:
            return ReplicaPlan(None, None, probes)
        hi = min(hi * 2, max_replicas)
    lo = hi // 2  # fails (or 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return ReplicaPlan(hi, hi * profile.num_gpus, probes)


def run_plan_cli(argv: Sequence[str] | None = None) -> ReplicaPlan:
    """`agentflow plan --scenario NAME --rate R [--profile P] [--policy agentflow]`."""
    parser = argparse.ArgumentParser(
        prog="agentflow plan", description="Replicas needed to serve a scenario at a rate."
    )
    parser.add_argument("--scenario", required=True, choices=SCENARIO_NAMES)
    parser.add_argument("--rate", type=float, required=True, help="arrivals per second")
    parser.add_argument("--profile", default="opt-13b-a100-tp2")
    parser.add_argument("--policy", default="agentflow", choices=POLICY_NAMES)
    parser.add_argument("--programs", type=int, default=600, help="programs simulated")
    parser.add_argument("--max-replicas", type=int, default=64)
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    plan = plan_replicas(
        args.scenario,
        args.rate,
        profile,
        args.policy,
        settings=CapacitySettings(num_programs=args.programs),
        max_replicas=args.max_replicas,
    )
    for count, result in sorted(plan.probes.items()):
        print(
            f"{count:4d} replica(s): attainment {result.attainment:.3f}, "
            f"drained {result.is_drained}, {'pass' if result.passed else 'fail'}"
        )
    if plan.num_replicas is None:
        print(f"{args.policy} cannot serve {args.rate} req/s with {args.max_replicas} replicas")
    else:
        print(
            f"{args.policy} needs {plan.num_replicas} replica(s) of {profile.name} "
            f"({plan.num_gpus} GPU(s)) for {args.scenario} at {args.rate} req/s"
        )
    return plan
