"""`agentflow profile`: measure step times on the real engine and fit the step-time predictor.

The engine runs our scheduler with the planner off (deadline order only, unless asked for a
planner: then each step's time includes planning, as it does when serving) and writes its step
trace; a grid of workloads (lone prefills of several lengths, decode batches of several sizes
over short and long prompts, and decodes with prefills arriving among them) produces steps
across the feature space. The trace's (prefill tokens, decode requests, decode context, prefill
pairs, step time) rows are the samples. Profiles are cached per (model, hardware) and picked
up by `VLLMEngine` automatically.
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import anyio

from agentflow.engine.interface import GenerationRequest
from agentflow.engine.vllm.config import PlannerName, VLLMEngineConfig
from agentflow.engine.vllm.engine import VLLMEngine
from agentflow.planner import StepSample, StepTimePredictor

__all__ = ["ProfileGrid", "fit_now", "measure_steps", "split_samples", "steps_from_trace"]


@dataclass(frozen=True, slots=True)
class ProfileGrid:
    """Which batches to run. Sizes are in tokens and requests."""

    prefill_lengths: tuple[int, ...] = (16, 48, 96, 160, 256, 384, 512, 768, 1024)
    decode_batches: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24, 32)
    decode_prompt_lengths: tuple[int, ...] = (32, 384, 896)
    """Prompt lengths of the decode batches. Serving decodes attend to whole prompts of up to a
    thousand tokens; a grid of short prompts only under-fitted the attention term, and the
    simulator then ran 1.5-5 ms per step fast against the real engine (sim_vs_real)."""
    decode_tokens: int = 24
    mixed_rounds: int = 6
    repeats: int = 2

    @classmethod
    def quick(cls) -> ProfileGrid:
        """A smaller grid: about a tenth of the full one's steps.

        About a minute on 2 CPU cores with the tiny model; with SmolLM2-135M six minutes when
        `benchmarks/capacity.py --quick` fitted it on a 2-core VM whose lone decode step it
        put at 103 ms.
        """
        return cls(
            prefill_lengths=(16, 64, 160, 384, 768),
            decode_batches=(1, 4, 8, 16, 32),
            decode_prompt_lengths=(32, 640),
            decode_tokens=16,
            mixed_rounds=3,
            repeats=1,
        )


def _prompt_of(num_tokens: int, salt: int) -> str:
    # Distinct leading words defeat prefix caching between grid points.
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
    rng = random.Random(salt)
    return " ".join(rng.choice(words) for _ in range(num_tokens))


async def _generate(engine: VLLMEngine, request_id: str, prompt: str, max_tokens: int) -> None:
    request = GenerationRequest.unconstrained(request_id, prompt, max_tokens, label="profile")
    async for _ in engine.stream(request):
        pass


async def _run_grid(engine: VLLMEngine, grid: ProfileGrid) -> None:
    counter = iter(range(1 << 30))
    for _ in range(grid.repeats):
        for length in grid.prefill_lengths:  # lone prefills
            await _generate(engine, f"p{next(counter)}", _prompt_of(length, next(counter)), 1)
        for prompt_length in grid.decode_prompt_lengths:  # decode batches
            for batch in grid.decode_batches:
                async with anyio.create_task_group() as group:
                    for _ in range(batch):
                        prompt = _prompt_of(prompt_length, next(counter))
                        group.start_soon(
                            _generate, engine, f"d{next(counter)}", prompt, grid.decode_tokens
                        )
        for round_index in range(grid.mixed_rounds):  # prefills landing among decodes
            rng = random.Random(round_index)
            async with anyio.create_task_group() as group:
                for _ in range(rng.choice(grid.decode_batches)):
                    prompt = _prompt_of(32, next(counter))
                    group.start_soon(
                        _generate, engine, f"m{next(counter)}", prompt, grid.decode_tokens
                    )
                await anyio.sleep(0.05)
                length = rng.choice(grid.prefill_lengths)
                group.start_soon(
                    _generate, engine, f"x{next(counter)}", _prompt_of(length, next(counter)), 2
                )


async def measure_steps(
    config: VLLMEngineConfig, grid: ProfileGrid, *, planner: PlannerName = "none"
) -> list[StepSample]:
    """Run the grid on a fresh engine and return every measured step (warm-up dropped).

    Args:
        config: the engine to measure.
        grid: which batches to run.
        planner: "none" (deadline order) measures the engine alone; a planner name measures
            steps as that planner serves them, planning time included.
    """
    with tempfile.TemporaryDirectory(prefix="agentflow-profile-") as tmp:
        trace = Path(tmp) / "steps.jsonl"
        # Steps are timed by our scheduler class, whatever policy `config` serves with.
        update = {
            "trace_path": trace,
            "planner": planner,
            "policy": "agentflow",
            "measure_speed": False,
        }
        profiling = config.model_copy(update=update)
        async with VLLMEngine(profiling) as engine:
            # Warm-up: the first step of each new shape pays one-off allocations; run every
            # prefill length and the largest decode batch once, then drop those steps.
            warmup = ProfileGrid(
                prefill_lengths=grid.prefill_lengths,
                decode_batches=(max(grid.decode_batches),),
                decode_prompt_lengths=(min(grid.decode_prompt_lengths),),
                decode_tokens=4,
                mixed_rounds=0,
                repeats=1,
            )
            await _run_grid(engine, warmup)
            trace.write_text("")
            await _run_grid(engine, grid)
        return steps_from_trace(trace)


def steps_from_trace(trace: Path) -> list[StepSample]:
    """The non-empty measured steps in a scheduler trace (`VLLMEngineConfig.trace_path`)."""
    rows = [json.loads(line) for line in trace.read_text().splitlines() if line]
    return [
        StepSample(
            num_prefill_tokens=row["num_prefill_tokens"],
            num_decode_reqs=row["num_decode_reqs"],
            num_context_tokens=row["num_context_tokens"],
            num_spec_tokens=row.get("num_spec_tokens", 0),
            step_time_s=row["step_ms"] / 1e3,
            num_prefill_pairs=row.get("num_prefill_pairs", 0),
        )
        for row in rows
        if row.get("event") == "step" and (row["num_prefill_tokens"] or row["num_decode_reqs"])
    ]


def split_samples(
    samples: list[StepSample], *, held_out: float = 0.25, seed: int = 0
) -> tuple[list[StepSample], list[StepSample]]:
    """A seeded random train/held-out split."""
    shuffled = samples[:]
    random.Random(seed).shuffle(shuffled)
    cut = int(len(shuffled) * (1 - held_out))
    return shuffled[:cut], shuffled[cut:]


async def fit_now(config: VLLMEngineConfig, *, planner: PlannerName = "none") -> StepTimePredictor:
    """Fit a step-time model on the quick grid, measured now (`ProfileGrid.quick`: minutes).

    For benchmarks on a shared machine, whose speed drifts by 20 % and more within an hour: a
    profile fitted earlier would make the SLO budgets (TTFT is a multiple of the predicted
    isolated prefill) and the planner's model describe another machine than the one measured.
    """
    samples = await measure_steps(config, ProfileGrid.quick(), planner=planner)
    fitted = StepTimePredictor.fit(samples)
    print(f"step-time model fitted on {len(samples)} steps measured now (planner {planner})")
    return fitted
