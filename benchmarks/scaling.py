"""Multi-replica scaling: capacity at 1, 2, 4, 8 replicas under three routing policies.

Part 1, simulator (in-process, no Ray). Capacity needs thousands of simulated requests per
probe, so the router runs on the simulator's fast event loop (`agentflow.cluster.sim`), not on
Ray actors; the routing code is the pool's (policies, the replicas' own planners asked for
admission, program affinity, the central best-effort lane). Every replica is the simulated
agentflow engine of one GPU profile (default OPT-13B on one A100), so the routing policies
differ only in where requests go: `agentflow` (admission-driven), `round_robin` and
`least_loaded` (join-shortest-queue). Scenarios: coding and tool calling, both with bursty
arrivals (the Azure code trace's timestamps, time-scaled to each rate: CV of gaps ~7.7, up to
43 arrivals in 5 mean gaps). Capacity = highest rate with > 90 % of programs meeting every
stage SLO (best-effort = miss) and the queue drained, bisected to `--resolution`.

Part 2, real engines (Ray). Two vLLM CPU replicas (SmolLM2-135M if prepared, else a tiny
random Llama) as Ray actors behind the `Pool`, replaying the CPU-scaled multi-SLO mix
(`agentflow.workloads.cpu_mix`, bursty arrivals) at one rate with each routing policy on the
same engines; attainment is reported, not capacity (one probe per policy keeps it short). The
two engines share this machine's 2 cores (each model worker pinned to its own core; frontends,
engine cores, Ray and the driver share both), so this shows that the real path works, not
that two CPU replicas add capacity here.

Rerun: `.venv/bin/python benchmarks/scaling.py [--quick] [--skip-vllm]`
Writes benchmarks/results/scaling.json and scaling.png.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from agentflow.cluster.sim import simulate_routed
from agentflow.engine.sim import PolicyOptions, get_profile
from agentflow.workloads import bisect_capacity, build_trace, get_scenario, score
from agentflow.workloads.capacity import ProbeResult

RESULTS = Path(__file__).parent / "results"
SCENARIOS = ("tool_calling", "coding")
ROUTINGS = ("agentflow", "round_robin", "least_loaded")
REPLICAS = (1, 2, 4, 8)
ARRIVAL = "azure_code"
PAPER = {"scaling_4_replicas_bursty": 6.2, "routing_gain": 1.19}


# -- part 1: simulator -------------------------------------------------------------------------


def _capacity(
    scenario: str, routing: str, num_replicas: int, start_rps: float, args: argparse.Namespace
) -> dict[str, Any]:
    profile = get_profile(args.profile)
    spec = get_scenario(scenario)
    tightest_s = min(slo.tpot_ms for slo in spec.slo_by_stage.values()) / 1e3
    options = PolicyOptions(num_replicas=num_replicas, tightest_tpot_s=tightest_s)
    predictor = profile.predictor()
    probes: list[dict[str, Any]] = []

    def evaluate(rate_rps: float) -> ProbeResult:
        started = time.perf_counter()
        trace = build_trace(spec, rate_rps, args.programs, predictor, seed=0, arrival=ARRIVAL)
        run = simulate_routed(trace, routing, profile, options)
        result = score(run.outcomes)
        admitted = [o for o in run.outcomes if not o.is_best_effort and o.lane is not None]
        result = replace(
            result,
            rate_rps=rate_rps,
            passed=result.passed and not run.is_stopped_early,
            is_stopped_early=run.is_stopped_early,
            wall_s=time.perf_counter() - started,
        )
        probes.append(
            {
                "rate_rps": rate_rps,
                "attainment": result.attainment,
                "passed": result.passed,
                "stopped_early": run.is_stopped_early,
                "admitted_attainment": float(np.mean([o.slo_met for o in admitted]))
                if admitted
                else None,
                "best_effort_routes": run.num_best_effort_routes,
                "promoted": run.num_promoted,
                "affinity_routes": run.num_affinity,
                "wall_s": result.wall_s,
            }
        )
        return result

    found = bisect_capacity(
        evaluate, start_rps=start_rps, resolution=args.resolution, min_rps=0.01, max_rps=256.0
    )
    return {"capacity_rps": found.capacity_rps, "probes": probes}


def _sweep(job: tuple[str, str, argparse.Namespace]) -> tuple[str, str, dict[str, Any]]:
    """Capacity at each replica count for one (scenario, routing); start from the last one."""
    scenario, routing, args = job
    started = time.monotonic()
    by_replicas: dict[str, Any] = {}
    start_rps = 0.25
    for num_replicas in REPLICAS:
        result = _capacity(scenario, routing, num_replicas, start_rps, args)
        by_replicas[str(num_replicas)] = result
        if result["capacity_rps"] > 0:
            start_rps = result["capacity_rps"] * 4  # bursts: scaling is often super-linear
        print(
            f"  {scenario:12} {routing:12} x{num_replicas}: {result['capacity_rps']:7.3f} req/s"
            f" ({len(result['probes'])} probes)",
            flush=True,
        )
    return scenario, routing, {"by_replicas": by_replicas, "wall_s": time.monotonic() - started}


def run_simulator(args: argparse.Namespace) -> dict[str, Any]:
    jobs = [(s, r, args) for s in SCENARIOS for r in ROUTINGS]
    details: dict[str, dict[str, Any]] = {s: {} for s in SCENARIOS}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for scenario, routing, result in pool.map(_sweep, jobs):
            details[scenario][routing] = result
    return details


# -- part 2: two real vLLM replicas on Ray --------------------------------------------------


def run_vllm(args: argparse.Namespace) -> dict[str, Any]:
    import anyio

    return anyio.run(_run_vllm, args)


async def _run_vllm(args: argparse.Namespace) -> dict[str, Any]:
    from agentflow.cluster import Pool, PoolConfig, VLLMSpec
    from agentflow.engine.vllm import VLLMEngineConfig
    from agentflow.models import build_tiny_model, resolve_model
    from agentflow.runtime.replay import replay
    from agentflow.workloads.cpu_mix import at_rate, build_workload

    try:
        model, load_format = resolve_model(None), "auto"
    except Exception:
        model = build_tiny_model(Path(tempfile.mkdtemp(prefix="scaling-tiny-")))
        load_format = "dummy"
    config = VLLMEngineConfig(
        model=model,
        load_format=load_format,
        kv_cache_mib=256,
        max_num_seqs=32,
        max_num_batched_tokens=512,
    )
    workload = at_rate(build_workload(args.vllm_requests, "bursty", seed=0), args.vllm_rate)
    started = time.monotonic()
    results: dict[str, Any] = {
        "model": model.name,
        "load_format": load_format,
        "rate_rps": args.vllm_rate,
        "requests": args.vllm_requests,
        "arrivals": "bursty (Azure code trace timestamps)",
        "slo_scale": "CPU: tight TPOT 50 ms, loose 150 ms; TTFT 3x/5x isolated prefill",
        "replicas": 2,
        "cpu_binds": ["0", "1"],
        "policies": {},
    }
    pool_config = PoolConfig(num_replicas=2, num_cpus_per_replica=1)
    # Each replica's model worker on its own core (the rest of the processes share both).
    spec = VLLMSpec(config, cpu_binds=("0", "1"))
    async with Pool(spec, pool_config) as pool:
        results["startup_s"] = time.monotonic() - started
        # A throw-away pass: the first requests after start-up pay one-off costs (allocations,
        # the predictor's online bias settling) that would otherwise land on the first policy.
        await replay(pool, workload[: len(workload) // 2], name="warmup")
        for index, routing in enumerate(args.vllm_routings):
            pool.use_routing(routing)
            before = pool.stats().router.num_routed_by_replica
            outcomes = await replay(pool, workload, name=f"{routing}-{index}")
            after = pool.stats()
            met = [o.slo_met for o in outcomes]
            admitted = [o for o in outcomes if not o.best_effort]
            results["policies"][routing] = {
                "attainment": float(np.mean(met)),
                "admitted_attainment": float(np.mean([o.slo_met for o in admitted]))
                if admitted
                else None,
                "num_best_effort": sum(o.best_effort for o in outcomes),
                "num_failed": sum(o.error is not None for o in outcomes),
                "num_finished": sum(o.finished for o in outcomes),
                "routed_by_replica": {
                    k: v - before.get(k, 0) for k, v in after.router.num_routed_by_replica.items()
                },
            }
            num_best_effort = results["policies"][routing]["num_best_effort"]
            print(
                f"  vllm x2 {routing:12} at {args.vllm_rate} req/s: attainment"
                f" {np.mean(met):6.1%}, best-effort {num_best_effort}",
                flush=True,
            )
    results["wall_s"] = time.monotonic() - started
    return results


# -- report ------------------------------------------------------------------------------------


def _summary(details: dict[str, dict[str, Any]]) -> dict[str, Any]:
    capacity = {
        scenario: {
            routing: {n: r["by_replicas"][n]["capacity_rps"] for n in map(str, REPLICAS)}
            for routing, r in by_routing.items()
        }
        for scenario, by_routing in details.items()
    }
    scaling: dict[str, Any] = {}
    per_doubling: dict[str, Any] = {}
    routing_gain: dict[str, Any] = {}
    for scenario, by_routing in capacity.items():
        scaling[scenario], per_doubling[scenario] = {}, {}
        for routing, caps in by_routing.items():
            scaling[scenario][routing] = {
                n: _ratio(caps[n], caps["1"]) for n in map(str, REPLICAS[1:])
            }
            per_doubling[scenario][routing] = {
                str(n): _ratio(caps[str(n)], caps[str(n // 2)]) for n in REPLICAS[1:]
            }
        routing_gain[scenario] = {
            n: {
                baseline: _ratio(by_routing["agentflow"][n], by_routing[baseline][n])
                for baseline in ("round_robin", "least_loaded")
            }
            for n in map(str, REPLICAS)
        }
    return {
        "capacity": capacity,
        "scaling": scaling,
        "per_doubling": per_doubling,
        "routing_gain": routing_gain,
    }


def _ratio(value: float, base: float) -> float | None:
    """value / base; None when the base capacity is 0 (the ratio is unbounded)."""
    return value / base if base > 0 else None


def _print_report(summary: dict[str, Any]) -> None:
    print("\ncapacity (req/s), bursty arrivals:")
    for scenario, by_routing in summary["capacity"].items():
        print(f"  {scenario}")
        for routing, caps in by_routing.items():
            row = "  ".join(f"x{n}: {v:7.3f}" for n, v in caps.items())
            print(f"    {routing:12} {row}")
    print(f"\nscaling vs 1 replica (paper: up to {PAPER['scaling_4_replicas_bursty']}x at 4):")
    for scenario, by_routing in summary["scaling"].items():
        for routing, ratios in by_routing.items():
            row = "  ".join(f"x{n}: " + (f"{v:5.2f}x" if v else "  n/a") for n, v in ratios.items())
            print(f"    {scenario:12} {routing:12} {row}")
    print("\nscaling per doubling of replicas (x2 = 2 vs 1, x4 = 4 vs 2, x8 = 8 vs 4):")
    for scenario, by_routing in summary["per_doubling"].items():
        for routing, ratios in by_routing.items():
            row = "  ".join(f"x{n}: " + (f"{v:5.2f}x" if v else "  n/a") for n, v in ratios.items())
            print(f"    {scenario:12} {routing:12} {row}")
    print(f"\nagentflow routing gain (paper: {PAPER['routing_gain']}x):")
    for scenario, by_n in summary["routing_gain"].items():
        for n, gains in by_n.items():
            row = "  ".join(
                f"vs {b}: " + (f"{v:5.2f}x" if v else "  n/a") for b, v in gains.items()
            )
            print(f"    {scenario:12} x{n}: {row}")


def _plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    scenarios = list(summary["capacity"])
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5.5 * len(scenarios), 4))
    for ax, scenario in zip(np.atleast_1d(axes), scenarios, strict=True):
        for routing, caps in summary["capacity"][scenario].items():
            points = [(n, caps[str(n)]) for n in REPLICAS if caps[str(n)] > 0]  # 0: off a log axis
            ax.plot(*zip(*points, strict=True), "o-", label=routing)
        first = next((n for n in REPLICAS if summary["capacity"][scenario]["agentflow"][str(n)]), 1)
        base = summary["capacity"][scenario]["agentflow"][str(first)]
        if base > 0:
            linear = [n for n in REPLICAS if n >= first]
            ax.plot(linear, [base * n / first for n in linear], ":", color="grey", label="linear")
        ax.set(
            xscale="log",
            yscale="log",
            xticks=REPLICAS,
            xticklabels=[str(n) for n in REPLICAS],
            xlabel="replicas",
            ylabel="capacity (req/s, > 90 % attainment)",
            title=f"{scenario}, bursty arrivals (0 not drawn)",
        )
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _earlier_vllm_part() -> dict[str, Any] | None:
    """The real-engine part of the last full run, marked as not rerun (`--skip-vllm`)."""
    path = RESULTS / "scaling.json"
    if not path.exists():
        return None
    earlier = json.loads(path.read_text()).get("vllm")
    if earlier is None:
        return None
    return {**earlier, "rerun": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer programs, coarser bisection")
    parser.add_argument(
        "--skip-vllm",
        action="store_true",
        help="simulator part only (the result file keeps the last real part, with rerun false)",
    )
    parser.add_argument("--profile", default="opt-13b-a100", help="simulator profile per replica")
    parser.add_argument("--workers", type=int, default=2, help="processes for the simulator part")
    parser.add_argument("--vllm-rate", type=float, default=0.5, help="req/s of the real run")
    parser.add_argument("--plot-only", action="store_true", help="redraw from scaling.json")
    args = parser.parse_args()
    if args.plot_only:
        saved = json.loads((RESULTS / "scaling.json").read_text())
        _plot({"capacity": saved["scenarios"]}, RESULTS / "scaling.png")
        return
    args.programs = 100 if args.quick else 150
    args.resolution = 0.25 if args.quick else 0.1
    args.vllm_requests = 16 if args.quick else 32
    args.vllm_routings = ["agentflow"] if args.quick else list(ROUTINGS)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

    started = time.monotonic()
    print(f"simulator: {args.profile} per replica, {args.programs} programs per probe", flush=True)
    details = run_simulator(args)
    sim_wall_s = time.monotonic() - started
    summary = _summary(details)
    _print_report(summary)
    vllm: dict[str, Any] | None = None
    if not args.skip_vllm:
        print("\nreal engines: 2 vLLM CPU replicas on Ray", flush=True)
        vllm = run_vllm(args)
    else:
        vllm = _earlier_vllm_part()

    payload = {
        "scenarios": summary["capacity"],
        "scaling_vs_1_replica": summary["scaling"],
        "scaling_per_doubling": summary["per_doubling"],
        "routing_gain": summary["routing_gain"],
        "paper": PAPER,
        "setup": {
            "backend": "simulator, in-process (no Ray: capacity search needs no actors)",
            "profile": args.profile,
            "arrivals": f"{ARRIVAL} (bursty, time-scaled)",
            "programs_per_probe": args.programs,
            "resolution": args.resolution,
            "target_attainment": 0.9,
            "replica_engine": "simulated agentflow scheduler (same engines for every routing)",
            "quick": args.quick,
        },
        "details": details,
        "vllm": vllm,
        "wall_s": {"simulator": sim_wall_s, "total": time.monotonic() - started},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scaling.json").write_text(json.dumps(payload, indent=2) + "\n")
    _plot(summary, RESULTS / "scaling.png")
    print(f"\nwrote {RESULTS / 'scaling.json'} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
