"""Builders for planner tests: requests, configs and random instances."""

from __future__ import annotations

from typing import Any

import numpy as np

from agentflow.planner import PlannerConfig, PlanRequest, StepTimePredictor

PREDICTOR = StepTimePredictor.default_cpu()


def make_config(**overrides: Any) -> PlannerConfig:
    fields = {"kv_blocks_total": 4096, "max_num_batched_tokens": 2048, "max_num_seqs": 64}
    fields.update(overrides)
    return PlannerConfig(**fields)


def make_request(request_id: str = "r", **overrides: Any) -> PlanRequest:
    """A waiting request that arrived at t=0 with a 256-token prompt (defaults)."""
    fields: dict[str, Any] = {
        "arrival_s": 0.0,
        "ttft_s": 1.0,
        "tpot_s": 0.05,
        "num_prompt_tokens": 256,
        "num_computed_tokens": 0,
        "num_output_tokens": 0,
        "max_output_tokens": 64,
        "first_token_s": None,
        "is_admitted": False,
    }
    fields.update(overrides)
    return PlanRequest(request_id, **fields)


def make_decoder(
    request_id: str,
    now_s: float,
    *,
    tpot_s: float = 0.05,
    slack_s: float | None = None,
    num_output_tokens: int = 8,
    max_output_tokens: int = 64,
    prompt: int = 128,
    is_admitted: bool = True,
) -> PlanRequest:
    """A decoding request whose next token is due `slack_s` from now (default: one TPOT)."""
    slack = tpot_s if slack_s is None else slack_s
    first = now_s + slack - num_output_tokens * tpot_s
    return PlanRequest(
        request_id,
        arrival_s=first - 0.2,
        ttft_s=0.2,
        tpot_s=tpot_s,
        num_prompt_tokens=prompt,
        num_computed_tokens=prompt,
        num_output_tokens=num_output_tokens,
        max_output_tokens=max_output_tokens,
        first_token_s=first,
        is_admitted=is_admitted,
    )


def random_instance(
    rng: np.random.Generator,
    num_running: int,
    num_waiting: int,
    *,
    now_s: float = 10.0,
    tpots_s: tuple[float, ...] = (0.05, 0.15),
    slowdowns: tuple[float, ...] = (3.0, 5.0),
    max_prompt: int = 1200,
    max_output: int = 128,
    admit_share: float = 0.7,
) -> tuple[float, list[PlanRequest], list[PlanRequest]]:
    """Random running decoders/prefills and waiting arrivals on the default CPU profile."""
    running = []
    for i in range(num_running):
        tpot = float(rng.choice(tpots_s))
        prompt = int(rng.integers(16, max_prompt))
        out_max = int(rng.integers(2, max_output))
        if rng.random() < 0.2:  # partly prefilled
            slowdown = float(rng.choice(slowdowns))
            ttft = slowdown * PREDICTOR.isolated_prefill_s(prompt)
            arrival = now_s - float(rng.uniform(0, 0.5)) * ttft
            running.append(
                PlanRequest(
                    f"p{i}",
                    arrival,
                    ttft,
                    tpot,
                    prompt,
                    int(rng.integers(0, prompt)),
                    0,
                    out_max,
                    None,
                    bool(rng.random() < admit_share),
                )
            )
        else:
            out = int(rng.integers(1, out_max))
            slack = float(rng.uniform(-0.2, 1.5)) * tpot
            first = now_s + slack - out * tpot
            running.append(
                PlanRequest(
                    f"d{i}",
                    first - 0.3,
                    0.3,
                    tpot,
                    prompt,
                    prompt,
                    out,
                    out_max,
                    first,
                    bool(rng.random() < admit_share),
                )
            )
    waiting = []
    for i in range(num_waiting):
        tpot = float(rng.choice(tpots_s))
        prompt = int(rng.integers(16, max_prompt))
        slowdown = float(rng.choice(slowdowns))
        ttft = slowdown * PREDICTOR.isolated_prefill_s(prompt)
        arrival = now_s - float(rng.uniform(0, 1.1)) * ttft  # some already late
        waiting.append(
            PlanRequest(
                f"w{i}", arrival, ttft, tpot, prompt, 0, 0, int(rng.integers(1, max_output))
            )
        )
    return now_s, running, waiting


def instance_strategy(max_running: int, max_waiting: int) -> Any:
    """Hypothesis strategy: (problem inputs, config) for a random small instance."""
    from hypothesis import strategies as st

    @st.composite
    def build(draw):
        seed = draw(st.integers(0, 2**32 - 1))
        num_running = draw(st.integers(0, max_running))
        num_waiting = draw(st.integers(0 if num_running else 1, max_waiting))
        config = make_config(
            kv_blocks_total=draw(st.sampled_from([40, 150, 400, 4000])),
            max_num_seqs=draw(st.sampled_from([2, 6, 64])),
        )
        now_s, running, waiting = random_instance(
            np.random.default_rng(seed),
            num_running,
            num_waiting,
            tpots_s=draw(st.sampled_from([(0.05,), (0.05, 0.15), (0.04, 0.1, 0.2)])),
        )
        return now_s, running, waiting, config

    return build()
