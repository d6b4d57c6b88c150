"""A tiny engine loop for planner tests: steps take exactly the predicted time.

Each step runs what the plan asks (must-decodes and prefill chunks), lets ahead-of-schedule
admitted decoders ride along while the step still fits its time budget, and records token
times. Best-effort work is not run. Good enough to check the planner's guarantee end to end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agentflow.planner import (
    PlannerConfig,
    PlanRequest,
    StepPlan,
    StepTimePredictor,
    chunk_context_tokens,
    plan,
)


@dataclass
class Flight:
    """One request's life in the loop."""

    request_id: str
    arrival_s: float
    ttft_s: float
    tpot_s: float
    num_prompt_tokens: int
    max_output_tokens: int
    num_computed_tokens: int = 0
    token_times_s: list[float] = field(default_factory=list)
    is_admitted: bool = False

    def view(self) -> PlanRequest:
        return PlanRequest(
            self.request_id,
            self.arrival_s,
            self.ttft_s,
            self.tpot_s,
            self.num_prompt_tokens,
            self.num_computed_tokens,
            len(self.token_times_s),
            self.max_output_tokens,
            self.token_times_s[0] if self.token_times_s else None,
            self.is_admitted,
        )

    @property
    def is_done(self) -> bool:
        return len(self.token_times_s) >= self.max_output_tokens

    def meets_slo(self, tpot_tolerance: float) -> bool:
        """The planner's promise, checked on every token (stricter than the scoring rule's
        every 20th): first token by the TTFT deadline; token k by t0 + (k - 1)·TPOT·(1 + tol).
        """
        deadline = self.arrival_s + self.ttft_s
        if not self.token_times_s or self.token_times_s[0] > deadline + 1e-9:
            return False
        t0 = max(deadline, self.token_times_s[0])
        period = self.tpot_s * (1 + tpot_tolerance)
        return all(t <= t0 + k * period + 1e-9 for k, t in enumerate(self.token_times_s))


def poisson_arrivals(
    rng: np.random.Generator, rate: float, duration_s: float, predictor: StepTimePredictor
) -> list[Flight]:
    """Arrivals with log-normal prompts, two SLO classes, TTFT 3x/5x isolated prefill."""
    flights: list[Flight] = []
    t = 0.0
    while (t := t + rng.exponential(1 / rate)) < duration_s:
        prompt = int(np.clip(rng.lognormal(5.5, 0.8), 16, 3000))
        slowdown, tpot = [(3.0, 0.05), (5.0, 0.15)][rng.integers(2)]
        flights.append(
            Flight(
                f"r{len(flights)}",
                t,
                slowdown * predictor.isolated_prefill_s(prompt),
                tpot,
                prompt,
                int(rng.integers(2, 96)),
            )
        )
    return flights


def _run_step(
    step: StepPlan, live: dict[str, Flight], predictor: StepTimePredictor, now_s: float
) -> float:
    """Execute one planned step; return its duration."""
    decodes = list(step.decode_ids)
    context = sum(live[i].num_computed_tokens + len(live[i].token_times_s) for i in decodes)
    for request_id, n in step.prefill_tokens_by_id.items():
        context += chunk_context_tokens(live[request_id].num_computed_tokens, n)
    num_prefill = sum(step.prefill_tokens_by_id.values())
    ahead = [
        f
        for f in live.values()
        if f.is_admitted and f.token_times_s and not f.is_done and f.request_id not in decodes
    ]
    for f in ahead:  # ride along while the step still fits
        extra = f.num_computed_tokens + len(f.token_times_s)
        if (
            predictor.step_time_s(num_prefill, len(decodes) + 1, context + extra)
            <= step.step_time_budget_s
        ):
            decodes.append(f.request_id)
            context += extra
    if not decodes and not num_prefill:
        return 0.0
    duration_s = predictor.step_time_s(num_prefill, len(decodes), context)
    end_s = now_s + duration_s
    for request_id in decodes:
        live[request_id].token_times_s.append(end_s)
    for request_id, n in step.prefill_tokens_by_id.items():
        flight = live[request_id]
        flight.num_computed_tokens += n
        if flight.num_computed_tokens == flight.num_prompt_tokens:
            flight.token_times_s.append(end_s)
    return duration_s


def run_closed_loop(
    flights: list[Flight], predictor: StepTimePredictor, config: PlannerConfig
) -> list[Flight]:
    """Serve `flights` to completion; return the ones that were ever admitted."""
    pending, now_s = list(flights), 0.0
    live: dict[str, Flight] = {}
    admitted: dict[str, Flight] = {}
    while pending or live:
        while pending and pending[0].arrival_s <= now_s:
            flight = pending.pop(0)
            live[flight.request_id] = flight
        views = [f.view() for f in live.values()]
        step = plan(
            now_s,
            [v for v in views if v.num_computed_tokens],
            [v for v in views if not v.num_computed_tokens],
            predictor,
            config,
        )
        for request_id in step.admitted_ids:
            live[request_id].is_admitted = True
            admitted[request_id] = live[request_id]
        duration_s = _run_step(step, live, predictor, now_s)
        if duration_s == 0.0:  # nothing to run: wait for an arrival or the next due token
            next_arrival_s = pending[0].arrival_s if pending else now_s + 0.01
            duration_s = min(next_arrival_s - now_s, step.step_time_budget_s)
        now_s += max(duration_s, 1e-6)
        live = {
            i: f
            for i, f in live.items()
            if not f.is_done and (f.is_admitted or now_s <= f.arrival_s + f.ttft_s)
        }
    return list(admitted.values())
