"""How far best-effort work may stretch a step."""

from __future__ import annotations

import math
from collections.abc import Iterable

from agentflow.planner.predictor import StepTimePredictor

__all__ = ["MIN_SPARE_OVERHEAD_RATIO", "SpareBudget", "spare_step_limit_s"]

MIN_SPARE_OVERHEAD_RATIO = 1.5
"""A step with best-effort work may always take this many empty steps' time: a third of it
is work. (Two empty steps, half of it work, would stretch the GPU profiles' best-effort steps
past their 50 ms TPOT tier, as their empty step is 22-41 ms; 1.5 leaves every GPU profile but
OPT-30B's as it was, and benchmarks/capacity_sim.py gives the same capacities as before.)"""


def spare_step_limit_s(
    predictor: StepTimePredictor, tightest_tpot_s: float, step_budget_s: float = math.inf
) -> float:
    """The longest step that spare (best-effort) tokens may fill.

    Normally the tightest TPOT among the requests present: filling the plan's whole time
    budget with best-effort work would make a request arriving meanwhile wait that long for
    its first chunk. But never less than `MIN_SPARE_OVERHEAD_RATIO` empty steps: where the
    step's fixed cost is near or above the tightest TPOT (a slow machine, or a profile fitted
    on one), a TPOT cap leaves best-effort work a token per step or none, and the engine
    crawls or stalls with work queued. With the floor, best-effort work always gets a third of
    a step or more.

    And never past `step_budget_s`, the plan's time to its earliest admitted decode deadline
    (`StepPlan.step_time_budget_s`): spare work must not make a guaranteed token late.
    """
    floor_s = max(tightest_tpot_s, MIN_SPARE_OVERHEAD_RATIO * predictor.base_s)
    return min(floor_s, step_budget_s)


class SpareBudget:
    """Best-effort work a step can still take: planner tokens left and time before the limit.

    Start it from the step as planned (admitted decodes and chunks), then offer best-effort
    decodes one at a time and give what is left to prompts. A decode is priced as a decode,
    not as a prefill token: where the two differ (a CPU engine's decode costs three prompt
    tokens; a profile may price a prompt token ten times a decode) counting spare work in
    tokens alone seats too many decoders or too few.

    Args:
        predictor: the step-time model.
        limit_s: the longest the step may take (`spare_step_limit_s`).
        max_tokens: the plan's spare tokens (`StepPlan.num_spare_tokens`).
        num_decodes, num_context_tokens, num_spec_tokens, num_prefill_tokens,
        num_prefill_pairs: the step's features so far.
    """

    __slots__ = (
        "limit_s",
        "num_context_tokens",
        "num_decodes",
        "num_prefill_pairs",
        "num_prefill_tokens",
        "num_spec_tokens",
        "predictor",
        "tokens_left",
    )

    def __init__(
        self,
        predictor: StepTimePredictor,
        limit_s: float,
        max_tokens: int,
        *,
        num_decodes: int = 0,
        num_context_tokens: int = 0,
        num_spec_tokens: int = 0,
        num_prefill_tokens: int = 0,
        num_prefill_pairs: int = 0,
    ) -> None:
        self.predictor = predictor
        self.limit_s = limit_s
        self.tokens_left = max(0, max_tokens)
        self.num_decodes = num_decodes
        self.num_context_tokens = num_context_tokens
        self.num_spec_tokens = num_spec_tokens
        self.num_prefill_tokens = num_prefill_tokens
        self.num_prefill_pairs = num_prefill_pairs

    def fits_decode(self, num_context_tokens: int, num_drafts: int = 0) -> bool:
        """Whether one more decode over this many cached tokens fits.

        With speculation it also verifies `num_drafts` draft tokens: each takes a token of the
        step's budget and its share of the step's time.
        """
        if self.tokens_left < 1 + num_drafts:
            return False
        step_s = self.predictor.step_time_s(
            self.num_prefill_tokens,
            self.num_decodes + 1,
            self.num_context_tokens + num_context_tokens,
            self.num_spec_tokens + num_drafts,
            self.num_prefill_pairs,
        )
        return step_s <= self.limit_s

    def add_decode(self, num_context_tokens: int, num_drafts: int = 0) -> None:
        """Count a decode the step took (verifying `num_drafts` drafts)."""
        self.num_decodes += 1
        self.num_context_tokens += num_context_tokens
        self.num_spec_tokens += num_drafts
        self.tokens_left -= 1 + num_drafts

    def take_decodes(self, decodes: Iterable[tuple[int, int]]) -> int:
        """Count in the leading decodes that fit, in order; returns how many.

        `decodes`: (cached tokens, drafts verified) of each decode.
        """
        taken = 0
        for context, num_drafts in decodes:
            if not self.fits_decode(context, num_drafts):
                break
            self.add_decode(context, num_drafts)
            taken += 1
        return taken

    def prefill_tokens(self) -> int:
        """Prompt tokens that still fit (one chunk's quadratic cost, conservatively)."""
        fit = self.predictor.max_prefill_tokens(
            self.limit_s,
            self.num_decodes,
            self.num_context_tokens,
            self.num_spec_tokens,
            num_prefill_pairs=self.num_prefill_pairs,
        )
        return max(0, min(self.tokens_left, fit - self.num_prefill_tokens))

    def add_prefill(self, num_tokens: int) -> None:
        """Count prompt tokens the step took (their pairs are in `prefill_tokens`' margin)."""
        self.num_prefill_tokens += num_tokens
        self.tokens_left -= num_tokens
