"""Request and trace factories for simulator tests."""

from __future__ import annotations

import random

from agentflow.engine.sim import RequestSpec, get_profile

PROFILE = get_profile("opt-7b-a100")


def make_request(
    request_id: str = "r0",
    *,
    arrival_s: float = 0.0,
    prompt: int = 100,
    output: int = 50,
    ttft_s: float = 1.0,
    tpot_s: float = 0.1,
    program_id: str = "",
    after_id: str | None = None,
    delay_s: float = 0.0,
) -> RequestSpec:
    return RequestSpec(
        request_id=request_id,
        arrival_s=arrival_s,
        num_prompt_tokens=prompt,
        num_output_tokens=output,
        ttft_s=ttft_s,
        tpot_s=tpot_s,
        program_id=program_id or request_id,
        stage="s",
        after_id=after_id,
        delay_s=delay_s,
    )


def make_trace(
    num_requests: int = 100,
    *,
    rate_rps: float = 4.0,
    seed: int = 0,
    prompt_range: tuple[int, int] = (50, 1500),
    output_range: tuple[int, int] = (10, 300),
    tpot_choices: tuple[float, ...] = (0.05, 0.1),
    ttft_slowdown: float = 5.0,
) -> list[RequestSpec]:
    """Poisson arrivals, uniform lengths, TTFT = slowdown x isolated prefill on PROFILE."""
    rng = random.Random(seed)
    predictor = PROFILE.predictor()
    trace, now_s = [], 0.0
    for i in range(num_requests):
        now_s += rng.expovariate(rate_rps)
        prompt = rng.randint(*prompt_range)
        trace.append(
            make_request(
                f"r{i}",
                arrival_s=now_s,
                prompt=prompt,
                output=rng.randint(*output_range),
                ttft_s=ttft_slowdown * predictor.isolated_prefill_s(prompt),
                tpot_s=rng.choice(tpot_choices),
            )
        )
    return trace
