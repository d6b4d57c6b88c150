"""One simulated engine instance: queues, KV blocks, preemption, and the step it is running.

# NOTE(sim): an instance behaves like one vLLM engine (one replica, any tensor parallelism).
# Each step its policy picks a batch of decodes and prefill chunks, reserving KV blocks as it
# goes (blocks are allocated on demand, 16 tokens each, as vLLM's paged attention does). When a
# reservation fails the policy preempts by recompute: the victim's blocks are freed and it
# returns to the front of the waiting queue. The step's duration is the step-time predictor's
# value for the batch's features (times a seeded jitter if configured); its tokens appear at the
# end of the step. Policies only choose; all bookkeeping lives here.
#
# Prefix caching follows vLLM's (on by default): a finished request's blocks go to the back of
# the free queue, tail block first, and keep their contents until allocations reach them
# (allocation takes the front). A follow-up request (`RequestSpec.after_id`) whose prompt
# starts with `num_shared_prefix_tokens` of its parent's sequence reuses the parent's leading
# blocks that survive, in whole blocks and never its last prompt token, when a policy first
# schedules it (`claim_cached_prefix`). Not modelled: hits between unrelated requests (a shared
# system prompt), and re-use of a preempted request's own blocks.
#
# Speculative decoding: a decode may verify `s` tokens (s - 1 drafts plus the bonus token). The
# step then costs the verify tokens and the drafter's s - 1 sequential steps (the batch's
# longest), and each draft is accepted with the profile's probability until the first
# rejection, so a decode yields 1..s tokens, all at the step's end (seeded, deterministic).
"""

from __future__ import annotations

import random
from collections import OrderedDict, deque
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
    spec_lens: tuple[int, ...] = ()
    """Verify length of each decode, in `decodes` order (empty: 1 each, no speculation)."""

    def spec_len_of(self, index: int) -> int:
        """Verify length of decode number `index`."""
        return self.spec_lens[index] if self.spec_lens else 1

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


@dataclass(frozen=True, slots=True)
class _CachedBlocks:
    """A finished request's KV blocks, sitting in the free queue with their contents."""

    num_tokens: int
    num_blocks: int
    num_blocks_ahead: int
    """Free blocks queued in front of these when they were freed (allocated before them)."""
    num_allocated_then: int
    """The instance's allocation counter when they were freed."""

    def num_surviving(self, num_allocated_now: int) -> int:
        """Leading blocks not yet reallocated (the tail was queued first, so it goes first)."""
        taken = num_allocated_now - self.num_allocated_then
        return max(0, min(self.num_blocks, self.num_blocks_ahead + self.num_blocks - taken))


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
        seed: seed of the jitter and of draft acceptance.
        acceptance: probability that the target model accepts a draft token.
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
        acceptance: float = 0.0,
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
        self.num_blocks_allocated = 0
        """Blocks handed out by `reserve` so far (the free queue's head moves this far)."""
        self._cached: OrderedDict[str, _CachedBlocks] = OrderedDict()
        """request_id -> its freed blocks, oldest first (evicted in this order)."""
        self._claimed: dict[int, tuple[str, _CachedBlocks]] = {}
        """id() of a request that took a cache hit -> the entry it took (to undo it)."""
        self.step: Step | None = None
        self.wake_s: float | None = None
        """When an instance with work but an empty batch looks again."""
        self.num_steps = 0
        self.busy_s = 0.0
        self._rng = random.Random(seed)
        self.acceptance = acceptance
        self._accept_rng = random.Random(f"accept-{seed}")

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
        self.num_blocks_allocated += need
        request.num_blocks += need
        return True

    # -- prefix cache ------------------------------------------------------------------------

    def cached_prefix_tokens(self, request: SimRequest) -> int:
        """Prompt tokens a first schedule of `request` would take from the prefix cache now."""
        hit = self._hit(request)
        return hit[1] * self.limits.block_size if hit else 0

    def claim_cached_prefix(self, request: SimRequest) -> int:
        """Take `request`'s prefix-cache hit (blocks and computed tokens); return its tokens.

        Policies call this when they first schedule a waiting request, as vLLM looks the cache
        up then; `release_cached_prefix` undoes it if the request does not start after all.
        """
        hit = self._hit(request)
        if hit is None:
            return 0
        parent, num_blocks = hit
        entry = self._cached.pop(parent)
        self._claimed[id(request)] = (parent, entry)
        num_tokens = num_blocks * self.limits.block_size
        self.num_free_blocks -= num_blocks
        request.num_blocks = num_blocks
        request.num_computed = request.num_cached_tokens = num_tokens
        return num_tokens

    def release_cached_prefix(self, request: SimRequest) -> None:
        """Undo `claim_cached_prefix` for a request that stays waiting (its blocks stay cached)."""
        claimed = self._claimed.pop(id(request), None)
        has_progressed = request.num_generated or request.num_computed != request.num_cached_tokens
        if claimed is None or has_progressed:
            return
        parent, entry = claimed
        self._cached[parent] = entry
        self._free(request)
        request.num_computed = request.num_cached_tokens = 0

    def _hit(self, request: SimRequest) -> tuple[str, int] | None:
        """(parent id, reusable blocks) of a not yet started request, or None."""
        spec = request.spec
        if spec.after_id is None or request.num_computed or request.num_generated:
            return None
        entry = self._cached.get(spec.after_id)
        if entry is None:
            return None
        # vLLM recomputes at least the last prompt token (it needs its logits).
        usable = min(spec.num_shared_prefix_tokens, entry.num_tokens, request.num_prompt_tokens - 1)
        num_blocks = min(
            usable // self.limits.block_size,
            entry.num_surviving(self.num_blocks_allocated),
            self.num_free_blocks,
        )
        return (spec.after_id, num_blocks) if num_blocks > 0 else None

    def _cache_blocks(self, request: SimRequest) -> None:
        """Queue a finished request's blocks as reusable, and forget fully evicted ones."""
        if request.num_blocks:
            self._cached[request.request_id] = _CachedBlocks(
                request.num_computed,
                request.num_blocks,
                self.num_free_blocks,
                self.num_blocks_allocated,
            )
        while self._cached:
            oldest = next(iter(self._cached.values()))
            if oldest.num_surviving(self.num_blocks_allocated) > 0:
                break
            self._cached.popitem(last=False)

    def start(self, request: SimRequest) -> None:
        """Move `request` from the waiting queue to the running list."""
        self.waiting.remove(request)
        self.running.append(request)

    def preempt(self, request: SimRequest) -> None:
        """Preempt by recompute: drop its KV and put it first in the waiting queue."""
        self.running.remove(request)
        self._claimed.pop(id(request), None)
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
        self._claimed.pop(id(request), None)
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
        num_drafts = longest = 0
        for i, request in enumerate(batch.decodes):
            num_context += request.num_computed + 1
            drafts = batch.spec_len_of(i) - 1
            num_drafts += drafts
            longest = max(longest, drafts)
        duration_s = self.predictor.step_time_s(
            num_prefill,
            len(batch.decodes),
            num_context,
            num_drafts,
            num_pairs,
            num_draft_steps=longest,
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
        for i, request in enumerate(step.batch.decodes):
            if request.finish_reason is not None:  # aborted while the step ran
                aborted.append(request)
                continue
            num_tokens = min(
                self._accepted(step.batch.spec_len_of(i)),
                request.num_output_tokens - request.num_generated,
            )
            request.num_computed += num_tokens
            for _ in range(num_tokens):
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

    def _accepted(self, spec_len: int) -> int:
        """Tokens one verify of `spec_len` yields: accepted drafts until a rejection, plus one."""
        num_tokens = 1
        while num_tokens < spec_len and self._accept_rng.random() < self.acceptance:
            num_tokens += 1
        return num_tokens

    def _detach(self, requests: Sequence[SimRequest]) -> None:
        gone = {id(r) for r in requests}
        for request in requests:
            self._claimed.pop(id(request), None)
            if request.finish_reason is not FinishReason.ABORTED:
                self._cache_blocks(request)
            self._free(request)
        self.running = [r for r in self.running if id(r) not in gone]
