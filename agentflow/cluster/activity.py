"""Which programs a replica is serving: those with a request on it, and those between rounds.

A tool-calling or reasoning program leaves its replica between stages (a tool runs, the next
prompt is built) and comes back to it, as later stages stay where the program's context is
cached. A replica whose programs are all between rounds holds no requests and looks idle;
routing new programs there by requests in flight fills it just before those programs return.
In benchmarks/scaling.py (simulator, bursty tool calling) the agentflow router had 0.71x the
capacity of round-robin at two replicas that way, and 1.09x with this count. So once programs
are seen to come back here,
a program idle on its replica counts as active until it has been idle longer than its kind
usually is: `gap_factor` times the 90th percentile of the gaps this replica has seen between
a program's rounds. Single-stage programs never come back, and then only programs with a
request in flight count: counting recently finished ones too would steer new work away from
the replicas that finish work fastest.

Where the programs run on agentflow's runtime, it says when each one ends (`program_ended`).
An ended program stops counting at once instead of lingering for the idle window, and idle
programs count from the first such signal on: a program neither in flight nor ended is between
rounds. The idle window stays as the fallback for programs whose end is never signalled
(clients of the OpenAI endpoint).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np

__all__ = ["ProgramActivity"]

_RECOMPUTE_EVERY = 16
"""New gaps between recomputations of the idle window."""
_RETURN_DECAY = 0.99
"""Weight kept by past returns per ended request: once programs stop coming back, idle ones
stop counting after some hundreds of ended requests (70 after a single return)."""
_MIN_RETURNS = 0.5
"""Decayed count of returns (or of signalled ends) above which idle programs count."""


@dataclass(slots=True)
class _Program:
    num_in_flight: int = 0
    last_end_s: float = float("-inf")


class ProgramActivity:
    """Programs in flight on one replica or recently so (see the module docstring).

    Args:
        min_idle_s: once programs are seen to come back, an idle one stays counted at least
            this long after its last request ended ...
        gap_factor: ... and this many times the 90th percentile of observed round gaps.
        max_gaps: gaps remembered for that percentile.
        max_remembered: ended programs remembered to measure their gap if they come back.
    """

    def __init__(
        self,
        *,
        min_idle_s: float = 1.0,
        gap_factor: float = 4.0,
        max_gaps: int = 256,
        max_remembered: int = 4096,
    ) -> None:
        self.min_idle_s = min_idle_s
        self.gap_factor = gap_factor
        self.max_remembered = max_remembered
        self._active: dict[str, _Program] = {}
        self._num_in_flight = 0
        """Programs in `_active` with a request here now."""
        self._expired: OrderedDict[str, float] = OrderedDict()
        """program_id -> last end, for programs no longer counted (LRU-bounded)."""
        self._gaps: deque[float] = deque(maxlen=max_gaps)
        self._num_new_gaps = 0
        self._idle_window_s = min_idle_s
        self._returns = 0.0
        """Decayed count of programs that came back here after a request ended."""
        self._signalled_ends = 0.0
        """Decayed count of programs whose end was signalled (`program_ended`)."""

    @property
    def counts_idle_programs(self) -> bool:
        """Whether idle programs count as active here.

        They do while programs recently came back here, or their ends are signalled.
        """
        return self._returns > _MIN_RETURNS or self._signalled_ends > _MIN_RETURNS

    @property
    def idle_window_s(self) -> float:
        """How long after its last request a program still counts as active."""
        return self._idle_window_s

    def dispatched(self, program_id: str, now_s: float) -> None:
        """A request of `program_id` was sent to this replica."""
        program = self._active.get(program_id)
        if program is None:
            program = _Program(last_end_s=self._expired.pop(program_id, float("-inf")))
            self._active[program_id] = program
        if program.num_in_flight == 0:
            self._num_in_flight += 1
            if program.last_end_s > float("-inf"):
                self._returns += 1.0
                self._add_gap(now_s - program.last_end_s)
        program.num_in_flight += 1

    def ended(self, program_id: str, now_s: float) -> None:
        """A request of `program_id` left this replica (finished, failed or moved).

        `now_s = -inf`: it was cancelled, and the program is not expected back.
        """
        program = self._active.get(program_id)
        if program is None or program.num_in_flight == 0:
            return
        program.num_in_flight -= 1
        if program.num_in_flight == 0:
            self._num_in_flight -= 1
            program.last_end_s = now_s
            self._returns *= _RETURN_DECAY
            self._signalled_ends *= _RETURN_DECAY

    def program_ended(self, program_id: str) -> None:
        """`program_id` finished (signalled by the runtime): it will send nothing more here."""
        self._signalled_ends += 1.0
        self._expired.pop(program_id, None)
        program = self._active.pop(program_id, None)
        if program is not None and program.num_in_flight > 0:  # ended with a request left
            self._num_in_flight -= 1

    def num_active(self, now_s: float) -> int:
        """Programs with a request here, and those idle here for less than `idle_window_s`.

        Idle programs count only while `counts_idle_programs`.
        """
        horizon_s = now_s - self._idle_window_s
        stale = [
            pid
            for pid, p in self._active.items()
            if p.num_in_flight == 0 and p.last_end_s < horizon_s
        ]
        for pid in stale:
            self._expired[pid] = self._active.pop(pid).last_end_s
        while len(self._expired) > self.max_remembered:
            self._expired.popitem(last=False)
        return len(self._active) if self.counts_idle_programs else self._num_in_flight

    def _add_gap(self, gap_s: float) -> None:
        self._gaps.append(max(0.0, gap_s))
        self._num_new_gaps += 1
        if self._num_new_gaps >= _RECOMPUTE_EVERY or len(self._gaps) < _RECOMPUTE_EVERY:
            self._num_new_gaps = 0
            p90 = float(np.quantile(np.fromiter(self._gaps, dtype=float), 0.9))
            self._idle_window_s = max(self.min_idle_s, self.gap_factor * p90)
