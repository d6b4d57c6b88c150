"""How much faster than real time the simulator runs (issue 4: at least 50x, 7B profile, 1 core).

Each of the six scenarios runs through each policy on the OPT-7B / A100 profile at three
arrival rates (light to overloaded), on the event loop the capacity search uses (`Simulation`).
Speed-up = simulated time (first arrival to last finish) / wall time of the run: the baseline
is real time itself, the simulated span a real engine would take. agentflow's policy plans
each step (it reuses its plan only through steady decode stretches), so it is the slowest and
the one the target is about. DistServe is left out: it splits a replica's GPUs into prefill
and decode instances, and this profile has one GPU.

Rerun: `.venv/bin/python benchmarks/sim_speed.py [--programs 200] [--rates 1 3 6]` (half a
minute, pinned to one core). Writes benchmarks/results/sim_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from agentflow.engine.sim import Simulation, StopRule
from agentflow.engine.sim.policies.factory import make_deployment
from agentflow.engine.sim.profiles import get_profile
from agentflow.workloads.capacity import CapacitySettings, policy_options_for
from agentflow.workloads.scenarios import SCENARIO_NAMES, build_trace, get_scenario

RESULTS = Path(__file__).parent / "results"
PROFILE = "opt-7b-a100"
POLICIES = ("vllm", "sarathi", "agentflow")
TARGET = 50.0


def measure(scenario: str, policy: str, rate: float, programs: int) -> dict[str, Any]:
    """One simulated run: its simulated span, wall time and speed-up over real time."""
    profile = get_profile(PROFILE)
    spec = get_scenario(scenario)
    trace = build_trace(spec, rate, programs, profile.predictor(), seed=0)
    deployment = make_deployment(policy, profile, policy_options_for(spec, CapacitySettings()))
    simulation = Simulation(trace, deployment, StopRule(None))
    started_s = time.perf_counter()
    outcomes = simulation.run()
    wall_s = time.perf_counter() - started_s
    last_finish_s = max(o.finish_s for o in outcomes if o.finish_s is not None)
    span_s = last_finish_s - min(s.arrival_s for s in trace)
    return {
        "scenario": scenario,
        "policy": policy,
        "rate_rps": rate,
        "requests": len(trace),
        "simulated_s": span_s,
        "wall_s": wall_s,
        "speedup": span_s / wall_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=200)
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 3.0, 6.0])
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # the target is per core: hold the run to one
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rows = []
    print(
        f"{'scenario':>14} {'policy':>10} {'req/s':>6} {'sim s':>7} {'wall s':>7} {'speed-up':>9}"
    )
    for scenario in SCENARIO_NAMES:
        for rate in args.rates:
            for policy in POLICIES:
                row = measure(scenario, policy, rate, args.programs)
                rows.append(row)
                print(
                    f"{scenario:>14} {policy:>10} {rate:6.1f} {row['simulated_s']:7.0f}"
                    f" {row['wall_s']:7.2f} {row['speedup']:8.0f}x"
                )
    slowest = min(rows, key=lambda r: r["speedup"])
    by_policy = {
        policy: min(r["speedup"] for r in rows if r["policy"] == policy) for policy in POLICIES
    }
    print(
        f"slowest: {slowest['speedup']:.0f}x real time ({slowest['policy']}, {slowest['scenario']}"
        f" at {slowest['rate_rps']} req/s); target {TARGET:.0f}x"
    )
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "profile": PROFILE,
        "programs": args.programs,
        "rows": rows,
        "min_speedup": slowest["speedup"],
        "min_speedup_by_policy": by_policy,
        "target_speedup": TARGET,
    }
    (RESULTS / "sim_speed.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
