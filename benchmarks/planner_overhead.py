"""Planner overhead: wall time per planning round vs queued+running requests, fast vs exact.

Instances are drawn from the Azure LLM inference traces (2023, code + conversation): prompt
lengths are divided by 4 to suit the CPU engine, output lengths are clipped to 512. Three SLO
classes: (TTFT 3x, TPOT 50 ms), (TTFT 5x, TPOT 150 ms), (TTFT 5x, TPOT 50 ms), TTFT relative to
the isolated prefill time. Part of the requests run in the engine (mostly decoding, some
part-way through prefill); the earlier plans' admissions among them are a feasible set (the fast
planner admits them first). The rest are waiting arrivals.

Two scenarios:
* `cpu` (the headline `rows`): SmolLM2-135M on 2 cores, `StepTimePredictor.default_cpu()`,
  8,192 KV blocks, 2,048 tokens and 256 sequences per step; a third of the requests running,
  arrivals up to 0.5 s old. The engine is busy at a few dozen requests, so most of a large
  queue is quickly infeasible.
* `burst` (`stress_rows`): a GPU-like engine (per-token and per-request costs 10x lower, same
  per-step overhead; 40,960 KV blocks, 8,192 tokens and 512 sequences per step), an eighth of
  the requests running and a burst of arrivals in the last 20 ms. More requests are feasible
  at once: this is where the exact DP explodes and the fast planner does the most work.

A timing is one whole round (build the problem, admit, lay out the step), as the engine sees
it. Exact runs under a transition cap; a size where a sampled instance hits it is reported as
not finished, and larger sizes are not tried. Quality compares admitted counts on small
instances (n = 8..48) where exact finished.

Usage: python benchmarks/planner_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from agentflow.planner import (
    AffinePiece,
    PlannerConfig,
    PlanRequest,
    StepTimePredictor,
    make_planner,
)
from agentflow.planner.batch import build_step_plan
from agentflow.planner.dp import solve_dp
from agentflow.planner.fast import admit_greedy
from agentflow.planner.problem import build_problem

DATA = Path("/work/shared/data")
RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (16, 32, 64, 128, 256, 512, 1024)
QUALITY_SIZES = (8, 12, 16, 24, 32, 48)
SLO_CLASSES = ((3.0, 0.05), (5.0, 0.15), (5.0, 0.05))  # (TTFT slowdown, TPOT s)
PROMPT_SCALE = 4
EXACT_CAP_TRANSITIONS = 30_000
NOW_S = 100.0

Instance = tuple[list[PlanRequest], list[PlanRequest]]
Row = dict[str, Any]


@dataclass(frozen=True)
class Profile:
    """An engine: its step-time model and limits."""

    name: str
    predictor: StepTimePredictor
    config: PlannerConfig
    running_share: float = 1 / 3
    """Share of the n requests already in the engine."""
    max_age_s: float = 0.5
    """Waiting requests arrived up to this long ago (and within 80 % of their TTFT)."""


def _gpu_like_predictor() -> StepTimePredictor:
    cpu = StepTimePredictor.default_cpu().pieces[0]
    return StepTimePredictor(
        [
            AffinePiece(
                constant_s=cpu.constant_s,
                per_prefill_token_s=cpu.per_prefill_token_s / 10,
                per_decode_req_s=cpu.per_decode_req_s / 10,
                per_context_token_s=cpu.per_context_token_s / 10,
                per_spec_token_s=cpu.per_spec_token_s / 10,
            )
        ]
    )


PROFILES = (
    Profile(
        "cpu",
        StepTimePredictor.default_cpu(),
        PlannerConfig(kv_blocks_total=8192, max_num_batched_tokens=2048, max_num_seqs=256),
    ),
    Profile(
        "burst",
        _gpu_like_predictor(),
        PlannerConfig(kv_blocks_total=40960, max_num_batched_tokens=8192, max_num_seqs=512),
        running_share=1 / 8,
        max_age_s=0.02,
    ),
)


def load_lengths() -> np.ndarray:
    """(prompt, output) pairs from both Azure traces, scaled to the CPU engine."""
    parts = [
        np.genfromtxt(
            DATA / f"AzureLLMInferenceTrace_{name}.csv",
            delimiter=",",
            skip_header=1,
            usecols=(1, 2),
        )
        for name in ("code", "conv")
    ]
    lengths = np.concatenate(parts)
    prompt = np.clip(lengths[:, 0] // PROMPT_SCALE, 16, 4000)
    output = np.clip(lengths[:, 1], 2, 512)
    return np.stack([prompt, output], axis=1).astype(int)


def _request(
    rng: np.random.Generator, lengths: np.ndarray, i: int, running: bool, profile: Profile
) -> PlanRequest:
    prompt, out_max = (int(x) for x in lengths[rng.integers(len(lengths))])
    slowdown, tpot = SLO_CLASSES[rng.integers(len(SLO_CLASSES))]
    ttft = slowdown * profile.predictor.isolated_prefill_s(prompt)
    if not running:
        arrival = NOW_S - float(rng.uniform(0.0, min(profile.max_age_s, 0.8 * ttft)))
        return PlanRequest(f"w{i}", arrival, ttft, tpot, prompt, 0, 0, out_max)
    if rng.random() < 0.2:  # part-way through prefill
        arrival = NOW_S - float(rng.uniform(0.0, 0.5)) * ttft
        computed = int(rng.integers(0, prompt))
        return PlanRequest(f"p{i}", arrival, ttft, tpot, prompt, computed, 0, out_max)
    out = int(rng.integers(1, out_max))
    first = NOW_S + float(rng.uniform(0.0, 1.2)) * tpot - out * tpot
    return PlanRequest(f"d{i}", first - ttft, ttft, tpot, prompt, prompt, out, out_max, first)


def make_instance(
    rng: np.random.Generator, lengths: np.ndarray, n: int, profile: Profile
) -> Instance:
    """One planning round with n requests: running ones (old set feasible) and arrivals."""
    num_running = max(1, int(n * profile.running_share))
    reqs = [_request(rng, lengths, i, i < num_running, profile) for i in range(n)]
    running, waiting = reqs[:num_running], reqs[num_running:]
    problem = build_problem(NOW_S, running, [], profile.predictor, profile.config)
    admission = admit_greedy(problem, profile.config)
    old = {problem.requests[j].request_id for j in np.flatnonzero(admission.admitted)}
    return [replace(r, is_admitted=r.request_id in old) for r in running], waiting


def time_fast(instances: list[Instance], repeats: int, profile: Profile) -> list[float]:
    planner = make_planner("fast")
    times = []
    for running, waiting in instances:
        gc.collect()
        for _ in range(repeats):
            start = time.perf_counter()
            planner.plan(NOW_S, running, waiting, profile.predictor, profile.config)
            times.append(time.perf_counter() - start)
    return times


def time_exact(instances: list[Instance], profile: Profile) -> tuple[list[float], int]:
    """Wall times of whole exact planning rounds that finished within the cap."""
    times, finished = [], 0
    for running, waiting in instances:
        gc.collect()
        start = time.perf_counter()
        problem = build_problem(NOW_S, running, waiting, profile.predictor, profile.config)
        outcome = solve_dp(problem, EXACT_CAP_TRANSITIONS)
        if outcome.is_complete:
            build_step_plan(problem, outcome.admission, profile.predictor, profile.config)
            times.append(time.perf_counter() - start)
            finished += 1
    return times, finished


@dataclass
class Quality:
    """Admitted counts of both planners, summed over instances where exact finished."""

    instances: int = 0
    unfinished: int = 0
    fast_admitted: int = 0
    exact_admitted: int = 0
    fast_new: int = 0
    exact_new: int = 0
    instances_fast_below_exact: int = 0
    max_gap: int = 0

    def add(self, fast: int, exact: int, num_old: int) -> None:
        self.instances += 1
        self.fast_admitted += fast
        self.exact_admitted += exact
        self.fast_new += fast - num_old
        self.exact_new += exact - num_old
        self.instances_fast_below_exact += int(fast < exact)
        self.max_gap = max(self.max_gap, exact - fast)

    def to_json(self) -> dict[str, float]:
        out: dict[str, float] = dict(asdict(self))
        out["ratio"] = round(self.fast_admitted / max(self.exact_admitted, 1), 5)
        out["ratio_new"] = round(self.fast_new / max(self.exact_new, 1), 5)
        return out


def quality(
    rng: np.random.Generator,
    lengths: np.ndarray,
    num_instances: int,
    profile: Profile,
    total: Quality,
) -> Quality:
    """Compare fast and exact admissions on small instances of one profile."""
    result = Quality()
    for _ in range(num_instances):
        n = int(rng.choice(QUALITY_SIZES))
        running, waiting = make_instance(rng, lengths, n, profile)
        problem = build_problem(NOW_S, running, waiting, profile.predictor, profile.config)
        outcome = solve_dp(problem, EXACT_CAP_TRANSITIONS)
        if not outcome.is_complete:
            result.unfinished += 1
            total.unfinished += 1
            continue
        fast = int(admit_greedy(problem, profile.config).admitted.sum())
        for q in (result, total):
            q.add(fast, int(outcome.admission.admitted.sum()), int(problem.is_old.sum()))
    return result


def percentile_ms(times: list[float], q: float) -> float:
    return round(float(np.percentile(times, q)) * 1e3, 4)


def timing_row(planner: str, n: int, times: list[float]) -> Row:
    return {
        "planner": planner,
        "n": n,
        "p50_ms": percentile_ms(times, 50),
        "p99_ms": percentile_ms(times, 99),
        "calls": len(times),
    }


def measure(
    rng: np.random.Generator,
    lengths: np.ndarray,
    sizes: tuple[int, ...],
    profile: Profile,
    num_instances: int,
    repeats: int,
) -> tuple[list[Row], list[Row]]:
    """Timing rows for every size, and the sizes where exact did not finish."""
    rows: list[Row] = []
    not_finished: list[Row] = []
    exact_gave_up = False
    for n in sizes:
        instances = [make_instance(rng, lengths, n, profile) for _ in range(num_instances)]
        fast = time_fast(instances, repeats, profile)
        rows.append(timing_row("fast", n, fast))
        sample = [] if exact_gave_up else instances[: max(3, num_instances // 4)]
        exact, finished = time_exact(sample, profile)
        if sample and finished == len(sample):
            rows.append(timing_row("exact", n, exact))
        else:
            exact_gave_up = True
            not_finished.append(
                {
                    "planner": "exact",
                    "n": n,
                    "instances": len(sample),
                    "finished": finished,
                    "cap_transitions": EXACT_CAP_TRANSITIONS,
                    "note": "a smaller size did not finish" if not sample else "hit the cap",
                }
            )
        print(
            f"[{profile.name}] n={n:5d}  fast p99 {percentile_ms(fast, 99):8.3f} ms  "
            f"exact finished {finished}/{len(sample)}",
            flush=True,
        )
    return rows, not_finished


def plot(series: dict[str, list[Row]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"fast": ("o", "tab:blue"), "exact": ("s", "tab:red")}
    for profile, rows in series.items():
        line = "-" if profile == "cpu" else ":"
        for name, (marker, color) in styles.items():
            pts = [r for r in rows if r["planner"] == name]
            if pts:
                ax.plot(
                    [r["n"] for r in pts],
                    [r["p99_ms"] for r in pts],
                    marker=marker,
                    color=color,
                    linestyle=line,
                    label=f"{name} p99 ({profile})",
                )
    ax.axhline(5.0, color="grey", linewidth=0.8, linestyle="--", label="5 ms target")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("queued + running requests")
    ax.set_ylabel("wall time per planning round (ms)")
    ax.set_title("Planner overhead, p99 (2 CPU cores; exact shown where it finished)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def report(name: str, rows: list[Row], not_finished: list[Row]) -> None:
    print(f"\n[{name}] {'planner':8s} {'n':>6s} {'p50 ms':>10s} {'p99 ms':>10s}")
    for row in sorted(rows, key=lambda r: (r["planner"] != "fast", r["n"])):
        print(
            f"[{name}] {row['planner']:8s} {row['n']:6d} {row['p50_ms']:10.3f} "
            f"{row['p99_ms']:10.3f}"
        )
    for row in not_finished:
        print(
            f"[{name}] exact    {row['n']:6d}   not finished ({row['finished']}/"
            f"{row['instances']} within {EXACT_CAP_TRANSITIONS} transitions; {row['note']})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer instances (smoke run)")
    args = parser.parse_args()
    rng = np.random.default_rng(20251125)
    lengths = load_lengths()
    num_instances, repeats, num_quality = (6, 2, 30) if args.quick else (40, 5, 200)
    started = time.perf_counter()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    timings: dict[str, tuple[list[Row], list[Row]]] = {}
    quality_total = Quality()
    quality_by_profile: dict[str, dict[str, float]] = {}
    for profile in PROFILES:
        timings[profile.name] = measure(rng, lengths, SIZES, profile, num_instances, repeats)
        q = quality(rng, lengths, num_quality, profile, quality_total)
        quality_by_profile[profile.name] = q.to_json()
    for name, (rows, not_finished) in timings.items():
        report(name, rows, not_finished)
    total = quality_total.to_json()
    print(
        f"\nquality: {quality_total.instances} instances where exact finished "
        f"({quality_total.unfinished} hit the cap): fast/exact admitted = "
        f"{quality_total.fast_admitted}/{quality_total.exact_admitted} = {total['ratio']:.4f}; "
        f"new admissions only {quality_total.fast_new}/{quality_total.exact_new} = "
        f"{total['ratio_new']:.4f}; fast below exact on "
        f"{quality_total.instances_fast_below_exact} instances (max gap {quality_total.max_gap})"
    )
    result = {
        "rows": timings["cpu"][0],
        "quality": total,
        "not_finished": timings["cpu"][1],
        "stress_rows": timings["burst"][0],
        "stress_not_finished": timings["burst"][1],
        "quality_by_profile": quality_by_profile,
        "setup": {
            "profiles": {
                p.name: {
                    "predictor": json.loads(p.predictor.to_json()),
                    "config": p.config.model_dump(exclude={"speculation"}),
                }
                for p in PROFILES
            },
            "slo_classes": [{"ttft_slowdown": s, "tpot_s": t} for s, t in SLO_CLASSES],
            "prompt_scale": f"1/{PROMPT_SCALE}",
            "instances_per_size": num_instances,
            "repeats": repeats,
            "quality_sizes": list(QUALITY_SIZES),
            "exact_cap_transitions": EXACT_CAP_TRANSITIONS,
            "quick": args.quick,
            "machine": f"{os.cpu_count()} CPU cores",
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "wall_s": round(time.perf_counter() - started, 1),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "planner_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    series = {name: rows for name, (rows, _) in timings.items()}
    if not plot(series, RESULTS / "planner_overhead.png"):
        print("matplotlib missing: skipped the plot")


if __name__ == "__main__":
    main()
