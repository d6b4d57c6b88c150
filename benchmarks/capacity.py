"""Capacity on the real vLLM CPU engine: stock vLLM (FCFS), vLLM priority = deadline (EDF), and
agentflow's planner, on one mixed multi-SLO workload, in one run.

Workload (CPU scale, stated in the result file): coding-like requests (TTFT 5x, tight TPOT),
summarization-like requests (long prompts, tight TTFT 3x, loose TPOT) and chat (loose both),
lengths resampled from the Azure LLM inference traces (scaled down to a 135M model on 2 cores),
Poisson or bursty (Azure code trace timestamps) arrivals. For each policy the arrival rate is
bisected for capacity: the highest rate whose attainment (the project's SLO rule; best-effort =
miss) exceeds 90 % with the queue drained within 20 s of the last deadline. The same requests
arrive at every rate (time-scaled), with fresh prompt text per probe so prefix caching cannot
carry over between probes. The three engines stay up for the whole run and the policies'
probes alternate, one engine serving at a time, so the machine's drift over the run lands on
every policy alike rather than on whichever was bisected last. Each search starts at the
simulator's capacity estimate for that policy (the same workload on the simulated CPU engine
with the run's step-time model) and walks in 10 % steps (`--no-sim-start`: the blind search,
doubling); the estimates are written beside the measured capacities, so every run also says
how well the simulator predicted the real engine.

With `--rates R ...` the policies are probed at those rates only (no bisection) and the run
reports attainment and goodput per rate. That is the mode for bursty arrivals: a window of the
Azure code trace packs 22 of 72 requests into 2 s at a mean of 1 req/s, so capacity at 90 %
sits near 0.2 req/s, where one bisection probe alone takes minutes of wall time.

The step-time model (which also sets the TTFT budgets and, on a machine that decodes slower
than the reference, the TPOTs: `cpu_mix.classes_for`) is fitted at the start of a full run:
this shared machine's speed drifts by 20 % and more within an hour, and a profile fitted
earlier makes the budgets and the planner describe another machine (`--no-calibrate` uses the
cached `agentflow profile` fit, as `--quick` does; with none cached, one is fitted now).

Rerun: `.venv/bin/python benchmarks/capacity.py --backend vllm [--quick]` (Poisson, bisection;
writes capacity_vllm[_quick].json and .png) and
`.venv/bin/python benchmarks/capacity.py --backend vllm --arrivals bursty --rates 0.5 1 2`
(writes capacity_vllm_bursty.json and .png). `--speculation K` gives every policy vLLM's
n-gram speculation with up to K drafts (stock vLLM verifies all of them, agentflow picks each
SLO tier's length from the acceptance it measures) and writes capacity_vllm_spec.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from contextlib import AsyncExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from agentflow.engine.vllm import VLLMEngine, VLLMEngineConfig
from agentflow.engine.vllm.config import ENGINE_TPOT_TOLERANCE
from agentflow.engine.vllm.profile_store import load_profile
from agentflow.engine.vllm.profiling import fit_now
from agentflow.models import resolve_model
from agentflow.planner import StepTimePredictor
from agentflow.runtime.replay import ReplayOutcome, TraceRequest, replay
from agentflow.workloads.capacity import ProbeResult, bisect_capacity
from agentflow.workloads.cpu_mix import (
    SLOClass,
    at_rate,
    build_workload,
    classes_for,
    lone_decode_ms,
    simulated_capacity_rps,
    slowdown,
)

RESULTS = Path(__file__).parent / "results"
POLICIES = ("fcfs", "edf", "agentflow")
DRAIN_LIMIT_S = 20.0


def score(outcomes: list[ReplayOutcome], rate_rps: float, wall_s: float) -> ProbeResult:
    """Attainment and the drain rule, measured from the replay's own clock."""
    met = [o.slo_met for o in outcomes]
    attainment = float(np.mean(met))
    last_deadline_ms = max(
        o.request.arrival_s * 1e3
        + o.ttft_budget_ms
        + (o.request.output_tokens - 1) * o.request.tpot_ms
        for o in outcomes
    )
    last_finish_ms = max(
        o.request.arrival_s * 1e3 + (o.token_times_ms[-1] if o.token_times_ms else 0.0)
        for o in outcomes
    )
    drained = all(o.finished for o in outcomes) and (
        last_finish_ms <= last_deadline_ms + DRAIN_LIMIT_S * 1e3
    )
    return ProbeResult(
        rate_rps=rate_rps,
        attainment=attainment,
        is_drained=drained,
        passed=drained and attainment > 0.9,
        num_programs=len(outcomes),
        num_best_effort=sum(o.best_effort for o in outcomes),
        wall_s=wall_s,
    )


def engine_config(model: Path, policy: str, num_drafts: int = 0) -> VLLMEngineConfig:
    """The engine every policy runs on (and the step-time model is fitted on).

    `num_drafts` > 0: n-gram speculation, every policy alike (stock vLLM verifies every draft;
    agentflow's planner picks each SLO tier's length).
    """
    return VLLMEngineConfig(
        model=model,
        policy=policy,
        kv_cache_mib=512,
        max_num_seqs=64,
        max_num_batched_tokens=512,
        num_speculative_tokens=num_drafts,
    )


async def capacity_of(
    policy: str,
    engine: VLLMEngine,
    workload: list[TraceRequest],
    args: argparse.Namespace,
    turn: anyio.Lock,
) -> dict[str, Any]:
    """Bisect (or probe at `args.rates`) one policy's capacity on its running engine.

    Each probe holds `turn` (a FIFO lock shared by the policies) for its whole replay, so one
    engine serves at a time and the policies' probes alternate.
    """
    salts = itertools.count()
    details: list[dict[str, Any]] = []

    async def evaluate_async(rate_rps: float) -> ProbeResult:
        async with turn:
            started = time.monotonic()
            outcomes = await replay(
                engine, at_rate(workload, rate_rps), name=f"{policy}-{next(salts)}"
            )
        result = score(outcomes, rate_rps, time.monotonic() - started)
        admitted = [o for o in outcomes if not o.best_effort]
        details.append(
            {
                **asdict(result),
                "admitted_attainment": float(np.mean([o.slo_met for o in admitted]))
                if admitted
                else None,
                "by_class": {
                    cls.name: float(
                        np.mean([o.slo_met for o in outcomes if o.request.slo_class == cls.name])
                    )
                    for cls in args.classes
                },
            }
        )
        print(
            f"  {policy:9} {rate_rps:6.2f} req/s: attainment {result.attainment:6.1%}"
            f" best-effort {result.num_best_effort:3d} drained {result.is_drained}"
            f" ({result.wall_s:.0f} s)",
            flush=True,
        )
        return result

    if args.rates:
        for rate_rps in args.rates:
            await evaluate_async(rate_rps)
        return {"probes": details}

    def evaluate(rate_rps: float) -> ProbeResult:
        return anyio.from_thread.run(evaluate_async, rate_rps)

    found = await anyio.to_thread.run_sync(
        lambda: bisect_capacity(
            evaluate,
            start_rps=args.start_rps[policy],
            resolution=args.resolution,
            min_rps=0.05,
            max_rps=64.0,
            step=args.step,
        )
    )
    at_capacity = [d for d in details if d["rate_rps"] == found.capacity_rps]
    return {
        "capacity_rps": found.capacity_rps,
        "goodput_rps": found.capacity_rps * (at_capacity[0]["attainment"] if at_capacity else 0),
        "admitted_attainment_at_capacity": at_capacity[0]["admitted_attainment"]
        if at_capacity
        else None,
        "probes": details,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    model = resolve_model(args.model)
    # One model for every policy: it sets the TTFT budgets (a multiple of the predicted
    # isolated prefill) and the TPOTs (`classes_for`), which must not differ between the
    # policies compared. Fitted with the planner on, as agentflow's real steps include planning.
    fit_config = engine_config(model, "agentflow")
    cached = None if args.calibrate else load_profile(model, fit_config.dtype)
    if cached is None and not args.calibrate:
        # The packaged default describes another machine: its budgets would not fit this one.
        print("no cached `agentflow profile` fit for this model here: fitting one now")
        args.calibrate = True
    predictor = cached or await fit_now(fit_config, planner="fast")
    decode_ms = lone_decode_ms(predictor)
    args.classes = classes_for(decode_ms)
    print(f"lone decode step {decode_ms:.0f} ms: {_slo_scale(args.classes)}", flush=True)
    workload = build_workload(args.requests, args.arrivals, args.seed, args.classes)
    results: dict[str, Any] = {}
    # Every policy's engine stays up and their probes alternate (one engine serves at a time):
    # bisected one after another, the machine's drift over the run landed on the ratios. Idle
    # engines do not slow the serving one (measured: step-time fits within 3 %).
    turn = anyio.Lock()
    async with AsyncExitStack() as stack:
        engines = {
            policy: await stack.enter_async_context(
                VLLMEngine(engine_config(model, policy, args.speculation), predictor=predictor)
            )
            for policy in args.policies
        }
        kv_cache = next(iter(engines.values())).kv_cache_shape  # one config for every policy
        _choose_starts(args, workload, predictor, decode_ms, kv_cache)
        mode = "probing" if args.rates else "bisecting capacity"
        print(f"{', '.join(args.policies)}: {mode}, probes alternating", flush=True)

        async def measure(policy: str) -> None:
            results[policy] = await capacity_of(policy, engines[policy], workload, args, turn)

        async with anyio.create_task_group() as group:
            for policy in args.policies:
                group.start_soon(measure, policy)
    return {policy: results[policy] for policy in args.policies}


def _choose_starts(
    args: argparse.Namespace,
    workload: list[TraceRequest],
    predictor: StepTimePredictor,
    decode_ms: float,
    kv_cache: tuple[int, int],
) -> None:
    """Where each policy's search starts (`args.start_rps`) and how far it walks (`args.step`).

    Blind, the walk doubles from 2 req/s less the machine's slowdown: six probes to 5 %, the
    first ones far from capacity (a probe lasts as long as its arrivals, so a low-rate one is
    the slowest). From the simulator's estimate on the same workload, step-time model and KV
    cache (`kv_cache`: the started engines' blocks and tokens per block), a walk of 10 % (or
    the resolution, if coarser) brackets capacity in two probes when the estimate is that
    close, and the bisection needs one more at 5 %. The real probes decide the result either
    way; a poor estimate costs probes, not accuracy. Speculation is not simulated here (the CPU
    profile has no drafter): its searches start from the plain estimate. Fixed-rate runs
    (`--rates`) search nothing.
    """
    blind_rps = 2.0 / slowdown(decode_ms)
    if args.rates or not args.sim_start:
        args.start_rps = dict.fromkeys(args.policies, blind_rps)
        args.step = 2.0
        return
    args.start_rps = {
        policy: simulated_capacity_rps(
            workload,
            policy,
            predictor,
            start_rps=blind_rps,
            tpot_tolerance=ENGINE_TPOT_TOLERANCE,
            kv_cache=kv_cache,
        )
        or blind_rps
        for policy in args.policies
    }
    args.step = max(1.1, 1 + args.resolution)
    starts = ", ".join(f"{p} {r:.2f}" for p, r in args.start_rps.items())
    print(f"searches start at the simulator's capacity (req/s): {starts}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["vllm"], default="vllm")
    parser.add_argument("--quick", action="store_true", help="fewer requests, coarser bisection")
    parser.add_argument("--arrivals", choices=["poisson", "bursty"], default="poisson")
    parser.add_argument("--model", default=None)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--speculation",
        type=int,
        default=0,
        metavar="K",
        help="n-gram speculation with up to K drafts per decode, for every policy (default 0:"
        " off); results go to capacity_vllm_spec*.json",
    )
    parser.add_argument(
        "--rates", nargs="+", type=_positive_rate, default=None, help="probe only these rates"
    )
    parser.add_argument(
        "--calibrate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit the step-time model at the start (default: on, off with --quick: then the"
        " cached `agentflow profile` fit is used, or one is fitted if there is none)",
    )
    parser.add_argument(
        "--sim-start",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start each policy's search at the simulator's capacity estimate and walk in"
        " short steps (default; --no-sim-start: the blind search, doubling from 2 req/s less"
        " the machine's slowdown)",
    )
    args = parser.parse_args()
    if args.calibrate is None:
        args.calibrate = not args.quick
    args.requests = 30 if args.quick else 72
    args.resolution = 0.25 if args.quick else 0.05
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    started = time.monotonic()
    results = anyio.run(run, args)
    wall_s = time.monotonic() - started
    if args.rates:
        _write_fixed_rates(args, results, wall_s)
        return
    capacity = {p: r["capacity_rps"] for p, r in results.items()}
    print(f"\ncapacity (req/s) on {args.arrivals} arrivals, {args.requests} requests per probe:")
    for policy, value in capacity.items():
        print(f"  {policy:9} {value:6.2f}")
    ratios = {}
    for baseline in ("fcfs", "edf"):
        if "agentflow" in capacity and capacity.get(baseline):
            ratios[f"agentflow_over_{baseline}"] = capacity["agentflow"] / capacity[baseline]
            print(f"  agentflow / {baseline}: {ratios[f'agentflow_over_{baseline}']:.2f}x")
    name = (
        "capacity_vllm"
        + ("_quick" if args.quick else "")
        + ("_bursty" if args.arrivals == "bursty" else "")
        + ("_spec" if args.speculation else "")
    )
    fields: dict[str, Any] = {
        "resolution": args.resolution,
        "capacity_rps": capacity,
        "ratios": ratios,
        "ratio_vs_fcfs": ratios.get("agentflow_over_fcfs"),
        "ratio_vs_edf": ratios.get("agentflow_over_edf"),
        "admitted_attainment": results.get("agentflow", {}).get("admitted_attainment_at_capacity"),
        "search_start_rps": args.start_rps,
        "search_start": "the simulator's capacity estimate (same workload, step-time model and"
        f" KV cache), walking x{args.step:g}"
        if args.sim_start
        else "blind: doubling from 2 req/s less the machine's slowdown",
    }
    _write_results(args, name, results, wall_s, fields)


def _slo_scale(classes: tuple[SLOClass, ...]) -> str:
    tpots = sorted({c.tpot_ms for c in classes})
    return (
        f"CPU: tight TPOT {tpots[0]:.0f} ms, loose {tpots[-1]:.0f} ms (2.5x / 7.5x the lone"
        " decode step, at least 50 / 150 ms); TTFT 3x/5x isolated prefill"
    )


def _positive_rate(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"rate must be > 0 req/s, got {text!r}")
    return value


def _write_fixed_rates(args: argparse.Namespace, results: dict[str, Any], wall_s: float) -> None:
    """Attainment and goodput per rate, and agentflow's ratios over each baseline."""
    by_rate: dict[str, dict[str, Any]] = {}
    print(f"\nattainment on {args.arrivals} arrivals, {args.requests} requests per probe:")
    for rate in args.rates:
        row = {
            policy: next(p for p in result["probes"] if p["rate_rps"] == rate)
            for policy, result in results.items()
        }
        goodput = {policy: rate * probe["attainment"] for policy, probe in row.items()}
        entry: dict[str, Any] = {
            "attainment": {policy: probe["attainment"] for policy, probe in row.items()},
            "goodput_rps": goodput,
        }
        for baseline in ("fcfs", "edf"):
            if "agentflow" in goodput and goodput.get(baseline):
                ratio = goodput["agentflow"] / goodput[baseline]
                entry[f"goodput_agentflow_over_{baseline}"] = ratio
        by_rate[f"{rate:g}"] = entry
        cells = "  ".join(f"{p} {a:6.1%}" for p, a in entry["attainment"].items())
        print(f"  {rate:5.2f} req/s: {cells}")
    suffix = "_bursty" if args.arrivals == "bursty" else "_poisson_rates"
    name = (
        "capacity_vllm"
        + ("_quick" if args.quick else "")
        + suffix
        + ("_spec" if args.speculation else "")
    )
    _write_results(args, name, results, wall_s, {"by_rate": by_rate})


RESULT_NAMES = {"fcfs": "vllm_fcfs", "edf": "vllm_edf", "agentflow": "agentflow"}
"""Policy names in the result files (stock vLLM's two schedulers, and ours)."""


def _write_results(
    args: argparse.Namespace,
    name: str,
    results: dict[str, Any],
    wall_s: float,
    fields: dict[str, Any],
) -> None:
    """Write `name`.json (the run's settings, `fields`, every probe) and `name`.png."""
    payload = {
        "backend": args.backend,
        "model": resolve_model(args.model).name,
        "arrivals": args.arrivals,
        "requests_per_probe": args.requests,
        "step_time_model": "fitted at the start of the run (quick grid, planner on)"
        if args.calibrate
        else "the cached `agentflow profile` fit",
        "slo_scale": _slo_scale(args.classes),
        "classes": [asdict(c) for c in args.classes],
        "num_speculative_tokens": args.speculation,
        **fields,
        "policies": {RESULT_NAMES.get(p, p): r for p, r in results.items()},
        "wall_s": wall_s,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2))
    _plot(results, RESULTS / f"{name}.png", args.arrivals)


def _plot(results: dict[str, Any], path: Path, arrivals: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for policy, result in results.items():
        probes = sorted(result["probes"], key=lambda p: p["rate_rps"])
        ax.plot(
            [p["rate_rps"] for p in probes], [p["attainment"] for p in probes], "o-", label=policy
        )
    ax.axhline(0.9, color="grey", ls="--", lw=1)
    ax.set(
        xscale="log",
        xlabel="arrival rate (req/s)",
        ylabel="SLO attainment",
        title=f"real vLLM CPU engine, SmolLM2-135M, {arrivals} arrivals",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
