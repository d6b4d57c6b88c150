"""FCFS chunked-prefill batching with a fixed token budget: stock vLLM and Sarathi-Serve.

Both fill a step in the same order: running decodes first (one token each), then the prefill
chunks of running requests, then new requests from the waiting queue, first come first served,
until the step's token budget or the sequence cap is used up. When KV blocks run out the
youngest running request is preempted by recompute (vLLM's rule), and no new request starts in
a step that preempted. The two baselines differ only in the budget: vLLM's default
`max_num_batched_tokens` (8192, so one long prompt fills a step and stalls every decode), and
Sarathi-Serve's budget picked offline so that a full step fits the tightest TPOT (stall-free
batching; see `sarathi_token_budget`). With speculation on, every decode verifies the same
fixed number of tokens (vLLM's `num_speculative_tokens` + 1), whatever its SLO.
"""

from __future__ import annotations

from agentflow.engine.sim.instance import Batch, Instance
from agentflow.engine.sim.request import SimRequest
from agentflow.planner import StepTimePredictor, chunk_context_tokens

__all__ = ["FCFSChunkedPolicy", "fit_or_preempt", "room_for", "sarathi_token_budget"]

SARATHI_GRANULARITY = 32
"""Sarathi-Serve's budget is a multiple of this many tokens."""


def fit_or_preempt(
    instance: Instance, request: SimRequest, num_tokens: int, victims: set[int] | None = None
) -> bool:
    """Reserve KV for `request`, preempting the youngest running requests as needed.

    Args:
        instance: the engine.
        request: a running (or about to start) request.
        num_tokens: tokens its KV must hold after the step.
        victims: if given, collects `id()` of every preempted request.

    Returns:
        False if `request` itself had to be preempted (it is then back in `waiting`).
    """
    while not instance.reserve(request, num_tokens):
        if not instance.running:
            return False
        victim = instance.running[-1]
        instance.preempt(victim)
        if victims is not None:
            victims.add(id(victim))
        if victim is request:
            return False
    return True


def room_for(instance: Instance, request: SimRequest) -> int:
    """Tokens `request` can still add to its KV with the blocks it holds and the free ones."""
    held = request.num_blocks + instance.num_free_blocks
    return held * instance.limits.block_size - request.num_computed


class FCFSChunkedPolicy:
    """Decodes first, then chunked prefills in arrival order, under a fixed token budget.

    Args:
        name: policy label ("vllm", "sarathi", ...).
        token_budget: tokens per step (capped by the instance's `max_num_batched_tokens`).
        spec_len: verify length of every decode (1: no speculation).
    """

    has_admission_control = False

    def __init__(self, name: str, token_budget: int, spec_len: int = 1) -> None:
        if token_budget < 1:
            raise ValueError("token_budget must be >= 1")
        if spec_len < 1:
            raise ValueError("spec_len must be >= 1")
        self.name = name
        self.token_budget = token_budget
        self.spec_len = spec_len

    def schedule(self, instance: Instance, now_s: float) -> Batch:
        """One step's batch (see the module docstring)."""
        budget = min(self.token_budget, instance.limits.max_num_batched_tokens)
        decodes: list[SimRequest] = []
        chunks: list[tuple[SimRequest, int]] = []
        victims: set[int] = set()
        snapshot = list(instance.running)
        # 1. running decodes, oldest first
        spec = self.spec_len
        for request in snapshot:
            if budget < spec:
                break
            if (
                request.is_decoding
                and id(request) not in victims
                and fit_or_preempt(instance, request, request.num_computed + spec, victims)
            ):
                decodes.append(request)
                budget -= spec
        # 2. running prefills (partial prompts, recomputes), as far as free KV allows: their
        # victims would be the decodes already in this batch
        for request in snapshot:
            if budget <= 0:
                break
            if not request.is_decoding and id(request) not in victims:
                n = min(request.num_remaining_prefill, budget, room_for(instance, request))
                if n > 0 and instance.reserve(request, request.num_computed + n):
                    chunks.append((request, n))
                    budget -= n
        # 3. new requests, first come first served (none after a preemption, as in vLLM)
        if not victims:
            self._start_waiting(instance, budget, decodes, chunks)
        if not decodes and not chunks and instance.running:
            # Partial prefills hold all the KV and none can grow: recompute the youngest.
            instance.preempt(instance.running[-1])
            return self.schedule(instance, now_s)
        spec_lens = (spec,) * len(decodes) if spec > 1 else ()
        return Batch(tuple(decodes), tuple(chunks), spec_lens)

    def _start_waiting(
        self,
        instance: Instance,
        budget: int,
        decodes: list[SimRequest],
        chunks: list[tuple[SimRequest, int]],
    ) -> None:
        max_seqs = instance.limits.max_num_seqs
        while instance.waiting and budget > 0 and len(instance.running) < max_seqs:
            request = instance.waiting[0]
            instance.claim_cached_prefix(request)
            remaining = request.num_remaining_prefill
            n = self.spec_len if request.is_decoding else min(remaining, budget)
            if not instance.reserve(request, request.num_computed + n):
                instance.release_cached_prefix(request)
                break
            instance.start(request)
            if request.is_decoding:  # handed off with its KV (disaggregated decode instance)
                decodes.append(request)
            else:
                chunks.append((request, n))
            budget -= n


def sarathi_token_budget(
    predictor: StepTimePredictor, tightest_tpot_s: float, typical_offset: int = 2048
) -> int:
    """Sarathi-Serve's offline budget: the largest multiple of 32 tokens whose step fits the TPOT.

    The step is priced as a prefill chunk that starts `typical_offset` tokens into its prompt
    (the attention over earlier chunks is part of a chunk's cost; a decode token costs no more
    than a prefill token in the profiles' models), so a full budget of any mix fits the TPOT.
    """
    best = SARATHI_GRANULARITY
    n = SARATHI_GRANULARITY
    while n <= 1 << 16:
        pairs = chunk_context_tokens(typical_offset, n)
        if predictor.step_time_s(n, 0, num_prefill_pairs=pairs) > tightest_tpot_s:
            break
        best = n
        n += SARATHI_GRANULARITY
    return best
