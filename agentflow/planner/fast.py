"""Fast planner: greedy EDF admission checked incrementally against the fluid model."""

# NOTE(planner): SLOs-Serve's `edf_sim` (§2.7) re-simulates the admitted set for every
# candidate. Here the simulation is kept as running totals on a fixed time grid (every job's
# deadline and decode window): per interval the prefill supply rate, per breakpoint the margin
# of each due prompt (supply - EDF demand - the decode round due with it) and its suffix
# minimum. A candidate only lowers margins from its deadline on, so `work > suffix_min[d]`
# rejects it in O(1), as does a decode load above the lowest rate of its window; the full
# check touches only its decode window. Adding a job never raises a margin or a rate, so a
# rejected candidate stays rejected: one EDF pass suffices, and the O(1) tests run vectorized
# over windows of candidates, redone only when an exchange frees room. Greedy EDF alone can
# keep a long prompt that blocks two short ones, so a rejected candidate may replace the newly
# admitted job with the most prefill work (Moore-Hodgson, optimal for the one-machine deadline
# problem), and rejects judged before the last exchange get one more pass. A job with a tight
# cadence can block two others without being the bulkiest, so a last pass trades one new job
# for two rejects where that fits (the exact DP finds such trades). Cost: O(N log N) set-up,
# vectorized screening, and O(window) numpy work per candidate that passes it; exchanges and
# the trade pass's full checks are capped per plan.

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from agentflow.planner.config import PlannerConfig
from agentflow.planner.feasibility import EPS
from agentflow.planner.grid import build_grid
from agentflow.planner.ledger import Ledger, job_table
from agentflow.planner.pipeline import run_planning_round
from agentflow.planner.predictor import StepTimePredictor
from agentflow.planner.problem import PlanningProblem
from agentflow.planner.request import PlanRequest
from agentflow.planner.step_plan import Admission, Rejection, StepPlan

__all__ = ["FastPlanner", "admit_greedy"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _reject_all(
    problem: PlanningProblem, candidates: Sequence[int], reason: Rejection
) -> dict[int, Rejection]:
    return {j: Rejection.LATE if problem.is_late[j] else reason for j in candidates}


class _Greedy:
    """EDF pass with Moore-Hodgson exchanges: a rejected job may replace a bulkier new one."""

    def __init__(self, problem: PlanningProblem, ledger: Ledger, max_swaps: int) -> None:
        self.problem, self.ledger = problem, ledger
        self.jobs = job_table(problem, ledger.grid)
        self.work: list[float] = problem.work_s.tolist()
        self.blocks: list[int] = problem.num_blocks.tolist()
        self.admitted = problem.is_old.copy()
        self.new: list[int] = []
        self.num_blocks = int(problem.num_blocks[problem.is_old].sum())
        self.swaps_left = max_swaps
        self.num_swaps = 0
        self.trade_checks_left = 0
        """Removals and full checks the one-for-two trade pass may still spend."""
        self.max_new_work, self.max_new_blocks = 0.0, 0

    def exchange_limits(self) -> tuple[bool, float, int]:
        """What decides whether a rejected candidate may try an exchange (see `_exchangeable`)."""
        return self.swaps_left > 0, self.max_new_work, self.max_new_blocks

    def offer(self, j: int) -> Rejection | None:
        """Try to admit candidate j; return why not."""
        p = self.problem
        if self.num_blocks + self.blocks[j] <= p.kv_blocks_total:
            if self.ledger.try_add(self.jobs[j]):
                self.take(j)
                return None
            reason = Rejection.COMPUTE
        else:
            reason = Rejection.MEMORY
        return reason if self._swap(j, reason) is None else None

    def take(self, j: int) -> None:
        """Record j as admitted (the ledger already holds it)."""
        self.admitted[j] = True
        self.new.append(j)
        self.num_blocks += self.blocks[j]
        self.max_new_work = max(self.max_new_work, self.work[j])
        self.max_new_blocks = max(self.max_new_blocks, self.blocks[j])

    def _swap(self, j: int, reason: Rejection) -> int | None:
        """Replace a bulkier new job by j if that fits; return the displaced job.

        Bulk is KV blocks for a memory reject and prefill work for a compute reject (the
        Moore-Hodgson rule: drop the longest job).
        """
        if self.swaps_left <= 0 or not self.new:
            return None
        size = self.blocks if reason is Rejection.MEMORY else self.work
        y = max(self.new, key=size.__getitem__)
        if size[y] <= size[j]:
            return None
        self.swaps_left -= 1
        return y if self._exchange(y, j) else None

    def _exchange(self, y: int, j: int) -> bool:
        """Swap admitted y for candidate j if the result is feasible."""
        if self.num_blocks - self.blocks[y] + self.blocks[j] > self.problem.kv_blocks_total:
            return False
        self.ledger.remove(self.jobs[y])
        if not self.ledger.try_add(self.jobs[j]):
            self.ledger.try_add(self.jobs[y], force=True)  # it fitted before: put it back
            return False
        self.num_swaps += 1
        self.num_blocks -= self.blocks[y]
        self.drop(y)
        self.take(j)
        return True

    def drop(self, y: int) -> None:
        """Record new job y as no longer admitted (the ledger and block count already agree)."""
        self.admitted[y] = False
        self.new.remove(y)
        self.max_new_work = max((self.work[i] for i in self.new), default=0.0)
        self.max_new_blocks = max((self.blocks[i] for i in self.new), default=0)


_RETRYABLE = (Rejection.COMPUTE, Rejection.MEMORY)
_WINDOW = 256
"""Candidates screened per vectorized step. Any size gives the same decisions: a failed
screen stays failed until an exchange, which re-screens the rest of the window. A larger one
makes fewer numpy calls on a long queue, at the price of full checks for candidates that
passed a screen made before later admissions."""
_PAIR_TRIES = 8
"""Removals and full checks the 1-for-2 exchange may spend per plan (bounded, so its cost
does not grow with the queue)."""
_PAIR_POOL = 32
"""Rejects (earliest deadlines first) the trade pass considers; bounds its screening cost."""


def _screen(greedy: _Greedy, jobs: IntArray) -> tuple[BoolArray, BoolArray]:
    """Which of `jobs` may fit now (necessary tests, vectorized), and which fail on memory."""
    p, led, g = greedy.problem, greedy.ledger, greedy.ledger.grid
    work, d = p.work_s[jobs], g.deadline_idx[jobs]
    a, b = g.start_idx[jobs], g.end_idx[jobs]
    no_memory = greedy.num_blocks + p.num_blocks[jobs] > p.kv_blocks_total
    last = len(led.rate)
    lowest = np.full(len(jobs), np.inf)
    if last:
        # Decode load must fit the lowest rate of its window: exact when the window runs to
        # the end of the grid, else checked at both ends and at the grid's bottleneck.
        lowest = np.where(
            b >= last,
            led.rate_suffix_min[np.minimum(a, last)],
            np.minimum(led.rate[np.minimum(a, last - 1)], led.rate[np.maximum(b - 1, 0)]),
        )
        neck = int(np.argmin(led.rate))
        lowest = np.where((a <= neck) & (neck < b), np.minimum(lowest, led.rate[neck]), lowest)
    fits = (
        ~no_memory
        & (work <= led.suffix_min[d] + EPS)
        & ((work <= 0) | (led.slack[d] - led.rounds[d] - work >= -EPS))
        & ((a >= b) | (p.load[jobs] <= lowest + EPS))
    )
    fits &= ~p.is_late[jobs]
    return fits, no_memory


def _exchangeable(greedy: _Greedy, jobs: IntArray, no_memory: BoolArray) -> BoolArray:
    """Which rejected `jobs` are small enough to try replacing a new job (Moore-Hodgson)."""
    p = greedy.problem
    if greedy.swaps_left <= 0:
        return np.zeros(len(jobs), dtype=bool)
    smaller = np.where(
        no_memory,
        p.num_blocks[jobs] < greedy.max_new_blocks,
        p.work_s[jobs] < greedy.max_new_work,
    )
    return smaller & ~p.is_late[jobs]


def _bulk_reasons(
    problem: PlanningProblem, jobs: IntArray, no_memory: BoolArray
) -> list[Rejection]:
    """Why each of `jobs` was turned away without a full check."""
    late = problem.is_late[jobs].tolist()
    return [
        Rejection.LATE if is_late else Rejection.MEMORY if is_memory else Rejection.COMPUTE
        for is_late, is_memory in zip(late, no_memory.tolist(), strict=True)
    ]


def _offer_all(
    greedy: _Greedy, candidates: IntArray, reasons: dict[int, Rejection], num_old: int
) -> int:
    """One EDF pass over `candidates`; return the position of the last exchange (-1: none).

    Candidates are screened a window at a time, again after every exchange; those that
    cannot fit, and are too bulky to replace a new job, are rejected in runs without a full
    check (the state changes only when a candidate is offered).
    """
    p, last_swap = greedy.problem, -1
    for start in range(0, len(candidates), _WINDOW):
        window = candidates[start : start + _WINDOW]
        ids, n = window.tolist(), len(window)
        fits_arr, no_memory = _screen(greedy, window)
        fits = fits_arr.tolist()
        exchangeable = _exchangeable(greedy, window, no_memory).tolist()
        bulk = _bulk_reasons(p, window, no_memory)
        i = 0
        while i < n:
            if num_old + len(greedy.new) >= p.max_num_seqs:
                reasons.update(_reject_all(p, candidates[start + i :].tolist(), Rejection.SEQS))
                return last_swap
            k = i
            while k < n and not (fits[k] or exchangeable[k]):
                k += 1
            reasons.update(zip(ids[i:k], bulk[i:k], strict=True))
            if k == n:
                break
            swaps, bulkiest = greedy.num_swaps, greedy.exchange_limits()
            if (reason := greedy.offer(ids[k])) is not None:
                reasons[ids[k]] = reason
            i = k + 1
            if i == n:
                break
            rest = window[i:]
            # Admissions only fill the engine up, so a failed screen stays failed; an exchange
            # frees room: screen the rest of the window again.
            if greedy.num_swaps > swaps:
                last_swap = start + k
                fits_arr, no_memory[i:] = _screen(greedy, rest)
                fits[i:] = fits_arr.tolist()
                bulk[i:] = _bulk_reasons(p, rest, no_memory[i:])
            if greedy.num_swaps > swaps or greedy.exchange_limits() != bulkiest:
                exchangeable[i:] = _exchangeable(greedy, rest, no_memory[i:]).tolist()
    return last_swap


def _pair_for(greedy: _Greedy, pool: list[int]) -> tuple[int, int] | None:
    """Admit two jobs of `pool` into the current state if some pair fits; return the pair.

    Only jobs that pass the cheap screen are checked in full, and every full check spends one
    of `greedy.trade_checks_left`. On failure the state is as before.
    """
    led, jobs, blocks = greedy.ledger, greedy.jobs, greedy.blocks
    fits, _ = _screen(greedy, np.asarray(pool, dtype=np.int64))
    firsts = [j for j, ok in zip(pool, fits.tolist(), strict=True) if ok]
    for i, first in enumerate(firsts):
        if greedy.trade_checks_left <= 0:
            return None
        greedy.trade_checks_left -= 1
        if not led.try_add(jobs[first]):
            continue
        greedy.num_blocks += blocks[first]
        rest = firsts[i + 1 :]
        ok_rest = _screen(greedy, np.asarray(rest, dtype=np.int64))[0].tolist() if rest else []
        for second, ok in zip(rest, ok_rest, strict=True):
            if not ok or greedy.trade_checks_left <= 0:
                continue
            greedy.trade_checks_left -= 1
            if led.try_add(jobs[second]):
                greedy.num_blocks -= blocks[first]
                return first, second
        led.remove(jobs[first])
        greedy.num_blocks -= blocks[first]
    return None


def _exchange_one_for_two(
    greedy: _Greedy, reasons: dict[int, Rejection], num_old: int, max_tries: int
) -> None:
    """Replace one newly admitted job by two rejected ones while that stays feasible.

    Moore-Hodgson swaps one for one by bulk; a job with a tight cadence can block two others
    without being the bulkiest (the exact DP finds such trades). Each success admits one more,
    so the loop ends; `max_tries` caps the removals and full checks it spends.
    """
    p, led = greedy.problem, greedy.ledger
    is_late = p.is_late.tolist()
    greedy.trade_checks_left = max_tries
    while greedy.trade_checks_left > 0 and num_old + len(greedy.new) < p.max_num_seqs:
        pool = [j for j, r in reasons.items() if r in _RETRYABLE and not is_late[j]]
        if len(pool) < 2:
            return
        pool = sorted(pool, key=p.deadline_s.__getitem__)[:_PAIR_POOL]
        # Tight decoders first: they hold the most supply for the least prefill work.
        for y in sorted(greedy.new, key=lambda j: (-p.load[j], -greedy.work[j])):
            greedy.trade_checks_left -= 1
            led.remove(greedy.jobs[y])
            greedy.num_blocks -= greedy.blocks[y]
            pair = _pair_for(greedy, pool)
            if pair is not None:
                greedy.drop(y)
                reasons[y] = Rejection.COMPUTE
                for j in pair:
                    del reasons[j]
                    greedy.take(j)
                break
            led.try_add(greedy.jobs[y], force=True)  # it fitted before: put it back
            greedy.num_blocks += greedy.blocks[y]
            if greedy.trade_checks_left <= 0:
                return
        else:
            return


def admit_greedy(
    problem: PlanningProblem, config: PlannerConfig | None = None, max_swaps: int = 16
) -> Admission:
    """Admit candidates in EDF order while the fluid model stays feasible.

    Old jobs are always kept; if they alone are infeasible, nothing new is admitted. A rejected
    candidate may displace the bulkiest newly admitted job (Moore-Hodgson, optimal for the
    single-machine deadline problem), at most `max_swaps` times per plan.
    """
    del config
    ledger = Ledger(problem, build_grid(problem))
    old = np.flatnonzero(problem.is_old)
    candidates = np.flatnonzero(~problem.is_old)
    is_old_ok = ledger.load_many(problem, old) and len(old) <= problem.max_num_seqs
    if not (is_old_ok and problem.num_blocks[old].sum() <= problem.kv_blocks_total):
        return Admission(
            problem.is_old.copy(),
            _reject_all(problem, candidates.tolist(), Rejection.OLD_INFEASIBLE),
            is_overloaded=True,
        )
    greedy = _Greedy(problem, ledger, max_swaps)
    reasons: dict[int, Rejection] = {}
    last_swap = _offer_all(greedy, candidates, reasons, len(old))
    # An exchange frees room that rejects judged before it may now use: offer those once more.
    # Rejects judged after the last exchange saw a state that has only filled up since.
    greedy.swaps_left = 0
    retry = [j for j in candidates[: max(last_swap, 0)].tolist() if reasons.get(j) in _RETRYABLE]
    for j in retry:
        del reasons[j]
    _offer_all(greedy, np.asarray(retry, dtype=np.int64), reasons, len(old))
    _exchange_one_for_two(greedy, reasons, len(old), _PAIR_TRIES)
    for j in candidates.tolist():
        if not greedy.admitted[j] and j not in reasons:
            reasons[j] = Rejection.COMPUTE  # displaced by a smaller job
    return Admission(greedy.admitted, reasons, prompt_margin_s=ledger.least_margin_s)


class FastPlanner:
    """The default planner: greedy EDF admission with an incremental feasibility simulation."""

    def admit(self, problem: PlanningProblem, config: PlannerConfig) -> Admission:
        """Admission decision for `problem` (see `admit_greedy`)."""
        return admit_greedy(problem, config)

    def plan(
        self,
        now_s: float,
        running: Sequence[PlanRequest],
        waiting: Sequence[PlanRequest],
        predictor: StepTimePredictor,
        config: PlannerConfig,
    ) -> StepPlan:
        """Plan one round; see `agentflow.planner.plan`."""
        return run_planning_round(self.admit, now_s, running, waiting, predictor, config)
