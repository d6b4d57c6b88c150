"""The simulated capacity benchmark: scenarios x policies, ratios, JSON and a plot.

Used by `benchmarks/capacity_sim.py` and by `agentflow bench capacity --backend sim`
(`run_capacity_cli`). Each (scenario, policy) gets its own bisection; agentflow's ratio is its
capacity over the best of the three baselines in that scenario, and the headline is the
geometric mean of those ratios (the paper reports 2.2x on average; its per-scenario ratios
were not recoverable, so `paper_ratio` is null).

A policy name with the suffix `+spec` runs with speculative decoding on the profile's draft
model (agentflow: verify lengths per SLO tier; baselines: a fixed length). With
`--speculation` the benchmark runs the three baselines with and without speculation and
agentflow with it, and the ratio is agentflow+spec over the best of all six baselines.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from agentflow.engine.sim import POLICY_NAMES, get_profile, list_profiles
from agentflow.workloads.capacity import CapacityResult, CapacitySettings, find_capacity
from agentflow.workloads.scenarios import ARRIVAL_NAMES, SCENARIO_NAMES

__all__ = [
    "BenchConfig",
    "capacity_table",
    "main",
    "run_bench",
    "run_capacity_cli",
    "write_plot",
]

BASELINES = ("vllm", "sarathi", "distserve")
PAPER_AVERAGE_RATIO = 2.2
DEFAULT_PROFILE = "opt-13b-a100-tp2"
SPEC_SUFFIX = "+spec"
SPEC_POLICIES = (*BASELINES, *(p + SPEC_SUFFIX for p in (*BASELINES, "agentflow")))
"""The `--speculation` run: baselines without and with speculation, agentflow with it."""


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What the benchmark runs."""

    scenarios: tuple[str, ...] = SCENARIO_NAMES
    policies: tuple[str, ...] = POLICY_NAMES
    profile: str = DEFAULT_PROFILE
    num_programs: int = 400
    num_replicas: int = 1
    seed: int = 0
    arrival: str | None = None


def _split(policy: str) -> tuple[str, bool]:
    """(simulator policy, speculation on) of a benchmark policy name."""
    if policy.endswith(SPEC_SUFFIX):
        return policy.removesuffix(SPEC_SUFFIX), True
    return policy, False


def _ratio(capacity_by_policy: dict[str, float]) -> float | None:
    """Best agentflow variant over the best baseline variant (with or without speculation)."""
    ours = [c for p, c in capacity_by_policy.items() if _split(p)[0] == "agentflow"]
    baselines = [c for p, c in capacity_by_policy.items() if _split(p)[0] in BASELINES]
    if not ours or not baselines:
        return None
    best = max(baselines)
    if best <= 0:  # undefined (every baseline failed even the lowest rate)
        return None
    return max(ours) / best


def _probe_rows(result: CapacityResult) -> list[dict[str, Any]]:
    rows = [asdict(p) for p in result.probes]
    return sorted(rows, key=lambda row: float(row["rate_rps"]))


def run_bench(config: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every (scenario, policy) bisection; return the JSON-ready results."""
    profile = get_profile(config.profile)
    settings = CapacitySettings(
        num_programs=config.num_programs,
        seed=config.seed,
        arrival=config.arrival,
        num_replicas=config.num_replicas,
    )
    scenarios: dict[str, Any] = {}
    started = time.perf_counter()
    for scenario in config.scenarios:
        capacity: dict[str, float] = {}
        probes: dict[str, list[dict[str, Any]]] = {}
        for policy in config.policies:
            t0 = time.perf_counter()
            name, speculation = _split(policy)
            result = find_capacity(
                scenario, name, profile, replace(settings, speculation=speculation)
            )
            capacity[policy] = round(result.capacity_rps, 4)
            probes[policy] = _probe_rows(result)
            log(
                f"{scenario:>14} {policy:>14}: {result.capacity_rps:7.3f} req/s "
                f"({len(result.probes)} probes, {time.perf_counter() - t0:.1f} s)"
            )
        ratio = _ratio(capacity)
        scenarios[scenario] = {
            "capacity_rps": capacity,
            "paper_ratio": None,
            "ratio_vs_best_baseline": ratio,
            "probes": probes,
        }
    return _summary(scenarios, config, settings, time.perf_counter() - started)


def _summary(
    scenarios: dict[str, Any],
    config: BenchConfig,
    settings: CapacitySettings,
    wall_s: float,
) -> dict[str, Any]:
    ratios = [
        s["ratio_vs_best_baseline"]
        for s in scenarios.values()
        if s["ratio_vs_best_baseline"] is not None and s["ratio_vs_best_baseline"] > 0
    ]
    geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else None
    profile = get_profile(config.profile)
    return {
        "scenarios": scenarios,
        "geomean_ratio_vs_best_baseline": geomean,
        "paper_average_ratio": PAPER_AVERAGE_RATIO,
        "profile": {
            "name": profile.name,
            "model": profile.model,
            "hardware": profile.hardware,
            "source": profile.source,
        },
        "settings": {
            "num_programs": config.num_programs,
            "num_replicas": config.num_replicas,
            "seed": config.seed,
            "arrival": config.arrival or "scenario default",
            "target_attainment": settings.target,
            "resolution": settings.resolution,
            "drain_limit_s": 20.0,
        },
        "wall_s": round(wall_s, 1),
    }


def capacity_table(results: dict[str, Any]) -> str:
    """A fixed-width table of capacities and ratios."""
    policies = list(
        dict.fromkeys(p for e in results["scenarios"].values() for p in e["capacity_rps"])
    )
    width = max(10, *(len(p) for p in policies))
    header = f"{'scenario':>14} " + " ".join(f"{p:>{width}}" for p in policies)
    lines = [header + f" {'ratio':>7} {'paper':>6}", "-" * (len(header) + 15)]
    for name, entry in results["scenarios"].items():
        caps = entry["capacity_rps"]
        cells = " ".join(
            f"{caps[p]:{width}.3f}" if p in caps else f"{'-':>{width}}" for p in policies
        )
        ratio = entry["ratio_vs_best_baseline"]
        paper = entry["paper_ratio"]
        ratio_text = f"{ratio:7.2f}" if ratio is not None else f"{'-':>7}"
        paper_text = f"{paper:6.2f}" if paper is not None else f"{'n/a':>6}"
        lines.append(f"{name:>14} {cells} {ratio_text} {paper_text}")
    geomean = results["geomean_ratio_vs_best_baseline"]
    geo_text = f"{geomean:.2f}" if geomean is not None else "n/a"
    lines.append(
        f"geo-mean agentflow / best baseline: {geo_text} (paper: {PAPER_AVERAGE_RATIO}x average)"
    )
    return "\n".join(lines)


def write_plot(results: dict[str, Any], path: Path) -> None:
    """Attainment vs rate per scenario (one line per policy) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    names = list(results["scenarios"])
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        entry = results["scenarios"][name]
        for policy, probes in entry["probes"].items():
            rates = [p["rate_rps"] for p in probes]
            values = [p["attainment"] for p in probes]
            ax.plot(rates, values, marker="o", ms=3, label=policy)
        ax.axhline(0.9, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0, 1.02)
        ax.set_title(name)
        ax.set_xlabel("arrival rate (req/s)")
        ax.set_ylabel("SLO attainment")
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(
        f"Simulated SLO attainment vs rate, {results['profile']['name']} (the bisection's "
        "probes; failing probes stop early, so their attainment is a lower bound)",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentflow bench capacity --backend sim",
        description="Capacity per scenario and policy on the simulator (bisection).",
    )
    parser.add_argument("--scenario", default="all", help=f"one of {SCENARIO_NAMES} or 'all'")
    parser.add_argument(
        "--policies",
        default=None,
        help=f"comma-separated; a '{SPEC_SUFFIX}' suffix speculates (default: every policy)",
    )
    parser.add_argument(
        "--speculation",
        action="store_true",
        help="baselines with and without speculative decoding, agentflow with it",
    )
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=list_profiles())
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--programs", type=int, default=None, help="programs per probe")
    parser.add_argument("--arrival", default=None, choices=ARRIVAL_NAMES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="150 programs per probe")
    parser.add_argument("--out", type=Path, default=None, help="JSON result path")
    parser.add_argument("--plot", type=Path, default=None, help="PNG plot path")
    return parser


def run_capacity_cli(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """`agentflow bench capacity --backend sim ...`: run, print the table, write JSON/plot."""
    args = _parser().parse_args(argv)
    scenarios = SCENARIO_NAMES if args.scenario == "all" else tuple(args.scenario.split(","))
    num_programs = args.programs or (150 if args.quick else 400)
    if args.policies is not None:
        policies = tuple(args.policies.split(","))
    else:
        policies = SPEC_POLICIES if args.speculation else POLICY_NAMES
    config = BenchConfig(
        scenarios=scenarios,
        policies=policies,
        profile=args.profile,
        num_programs=num_programs,
        num_replicas=args.replicas,
        seed=args.seed,
        arrival=args.arrival,
    )
    results = run_bench(config)
    results["settings"]["quick"] = bool(args.quick)
    results["settings"]["speculation"] = bool(args.speculation)
    print(capacity_table(results))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    if args.plot is not None:
        write_plot(results, args.plot)
        print(f"wrote {args.plot}")
    return results


def main() -> None:
    """Console entry point."""
    run_capacity_cli()
