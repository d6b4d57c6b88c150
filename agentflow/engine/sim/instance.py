"""One simulated engine instance: queues, KV blocks, preemption, and the step it is running.

# NOTE(sim): an instance behaves like one vLLM engine (one replica, any tensor parallelism).
# Each step its policy picks a batch of decodes and prefill chunks, reserving KV blocks as it
# goes (blocks are allocated on demand, 16 tokens each, as vLLM's paged attention does). When a
# reservation fails the policy preempts by recompute: the victim's blocks are freed and it
# returns to the front of the waiting queue. The step's duration is the step-time predictor's
# value for the batch's features (times a seeded jitter if configured); its tokens appear at the
# end of the step. Policies only choose; all bookkeeping lives here.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from agentflow.engine.sim.request import FinishReason, SimRequest
from agentflow.planner import StepTimePredictor, chunk_context_tokens

__all__ = ["Batch", "EngineLimits", "Instance", "SchedulingPolicy", "Step"]


@dataclass(frozen=True, slots=True)
class EngineLimits:
    """Capacity limits of one instance."""

    kv_blocks_total: int
    block_size: int = 16
    max_num_batched_tokens: int = 8192
    """Engine cap on tokens per step."""
    max_num_seqs: int = 256
    """Engine cap on running sequences."""


@dataclass(frozen=True, slots=True)
class Batch:
    """What a policy picked for one step. KV for every entry is already reserved."""

    decodes: tuple[SimRequest, ...]
    chunks: tuple[tuple[SimRequest, int], ...]
    """(request, prefill tokens) pairs."""

    @property
    def is_empty(self) -> bool:
        """Nothing to run."""
        return not self.decodes and not self.chunks


EMPTY_BATCH = Batch((), ())


@dataclass(frozen=True, slots=True)
class Step:
    """One engine step in flight."""

    batch: Batch
    start_s: float
    end_s: float
    num_prefill_tokens: int
    num_decode_reqs: int
    num_context_tokens: int


class SchedulingPolicy(Protocol):
    """Chooses the next batch of one instance.

    Contract: `schedule` is called when the instance is idle; it may move requests between the
    instance's queues only through `Instance.start`, `Instance.preempt` and `Instance.reserve`,
    and must reserve KV for every request it returns. It must not advance time or emit tokens.
    """

    name: str
    has_admission_control: bool
    """False: every request is served as admitted (no best-effort lane)."""

    def schedule(self, instance: Instance, now_s: float) -> Batch:
        """The batch to run next (possibly empty)."""
        ...


class Instance:
    """One engine: waiting and running queues, a KV block pool, and at most one step in flight.

    Args:
        name: label used in outcomes and debugging.
        predictor: the *true* step-time model of this instance.
        limits: KV and batch limits.
        policy: chooses each step's batch.
        jitter: relative standard deviation of step times (0 = exactly the predictor).
        seed: seed of the jitter.
        is_prefill_only: a disaggregated prefill instance: a request leaves (its KV is handed
            off) as soon as its prefill samples a token.
    """

    def __init__(
        self,
        name: str,
        predictor: StepTimePredictor,
        limits: EngineLimits,
        policy: SchedulingPolicy,
        *,
        jitter: float = 0.0,
        seed: int = 0,
        is_prefill_only: bool = False,
    ) -> None:
        self.name = name
        self.predictor = predictor
        self.limits = limits
        self.policy = policy
        self.jitter = jitter
        self.is_prefill_only = is_prefill_only
        self.running: list[SimRequest] = []
        self.waiting: deque[SimRequest] = deque()
        self.num_free_blocks = limits.kv_blocks_total
        self.step: Step | None = None
        self.wake_s: float | None = None
        """When an instance with work but an empty batch looks again."""
        self.num_steps = 0
        self.busy_s = 0.0
        self._rng = random.Random(seed)

    # -- queue and KV operations (used by policies) ------------------------------------------

    @property
    def has_work(self) -> bool:
        """Any request waiting or running."""
        return bool(self.running or self.waiting)

    def blocks_for(self, num_tokens: int) -> int:
        """KV blocks that hold `num_tokens` tokens."""
        return -(-num_tokens // self.limits.block_size)

    def can_ever_fit(self, request: SimRequest) -> bool:
        """Whether the whole request (prompt + output) fits in an empty cache."""
        total = request.num_prompt_tokens + request.num_output_tokens
        return self.blocks_for(total) <= self.limits.kv_blocks_total

    def add(self, request: SimRequest) -> None:
        """Queue a new (or handed-off) request at the back of the waiting queue."""
        if not self.policy.has_admission_control:
            request.is_admitted = True
        self.waiting.append(request)
        self.wake_s = None

    def reserve(self, request: SimRequest, num_tokens: int) -> bool:
        """Grow `request`'s KV to hold `num_tokens` tokens; False (nothing taken) if it can't."""
        need = self.blocks_for(num_tokens) - request.num_blocks
        if need <= 0:
            return True
        if need > self.num_free_blocks:
            return False
        self.num_free_blocks -= need
        request.num_blocks += need
        return True

    def start(self, request: SimRequest) -> None:
        """Move `request` from the waiting queue to the running list."""
        self.waiting.remove(request)
        self.running.append(request)

    def preempt(self, request: SimRequest) -> None:
        """Preempt by recompute: drop its KV and put it first in the waiting queue."""
        self.running.remove(request)
        self._free(request)
        request.num_computed = 0
        request.num_preemptions += 1
        self.waiting.appendleft(request)

    def abort(self, request: SimRequest) -> None:
        """Remove `request` wherever it is and free its KV."""
        if request in self.running:
            self.running.remove(request)
        elif request in self.waiting:
            self.waiting.remove(request)
        self._free(request)

    def _free(self, request: SimRequest) -> None:
        self.num_free_blocks += request.num_blocks
        request.num_blocks = 0

    # -- stepping ----------------------------------------------------------------------------

    def begin_step(self, now_s: float) -> Step | None:
        """Ask the policy for a batch and start it; None (and a wake-up time) if empty."""
        batch = self.policy.schedule(self, now_s)
        if batch.is_empty:
            self.wake_s = now_s + max(self.predictor.base_s, 1e-3) if self.has_work else None
            return None
        num_prefill = num_pairs = num_context = 0
        for request, n in batch.chunks:
            num_prefill += n
            num_pairs += chunk_context_tokens(request.num_computed, n)
        for request in batch.decodes:
            num_context += request.num_computed + 1
        duration_s = self.predictor.step_time_s(
            num_prefill, len(batch.decodes), num_context, num_prefill_pairs=num_pairs
        )
        if self.jitter > 0:
            duration_s *= max(0.5, 1.0 + self._rng.gauss(0.0, self.jitter))
        duration_s = max(duration_s, 1e-6)
        self.step = Step(
            batch, now_s, now_s + duration_s, num_prefill, len(batch.decodes), num_context
        )
        self.wake_s = None
        self.num_steps += 1
        self.busy_s += duration_s
        return self.step

    def finish_step(self) -> tuple[list[SimRequest], list[SimRequest], list[SimRequest]]:
        """Apply the step in flight at its end time.

        Returns:
            (requests that got a token, requests that finished, requests handed off by a
            prefill-only instance).
        """
        step = self.step
        assert step is not None, "finish_step without a step in flight"
        self.step = None
        end_s = step.end_s
        emitted: list[SimRequest] = []
        aborted: list[SimRequest] = []
        for request in step.batch.decodes:
            if request.finish_reason is not None:  # aborted while the step ran
                aborted.append(request)
                continue
            request.num_computed += 1
            request.emit(end_s)
            emitted.append(request)
        for request, n in step.batch.chunks:
            if request.finish_reason is not None:
                aborted.append(request)
                continue
            request.num_computed += n
            if request.num_computed >= request.num_prefill_target:
                request.emit(end_s)
                emitted.append(request)
        finished = [r for r in emitted if r.num_generated >= r.num_output_tokens]
        for request in finished:
            request.finish_s = end_s
            request.finish_reason = FinishReason.LENGTH
        handed: list[SimRequest] = []
        if self.is_prefill_only:
            handed = [r for r in emitted if not r.is_finished]
        if finished or handed or aborted:
            self._detach([*finished, *handed, *aborted])
        return emitted, finished, handed

    def _detach(self, requests: Sequence[SimRequest]) -> None:
        gone = {id(r) for r in requests}
        for request in requests:
            self._free(request)
        self.running = [r for r in self.running if id(r) not in gone]
