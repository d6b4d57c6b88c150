"""Clocks for `SimEngine`: paced to the wall clock, or purely virtual (event-driven).

# NOTE(sim): the runtime measures TTFT/TPOT with `time.monotonic()` in `runtime/context.py`.
# `PacedClock` therefore runs simulated time at wall-clock speed (or `speedup` times faster):
# at speedup 1 every token reaches the runtime when the simulated step that made it ends, so
# the runtime's own records and verdicts are exactly the simulated ones (up to event-loop
# jitter, ~1 ms). At speedup k the runtime's times are the simulated ones divided by k, while
# absolute SLO budgets are not, so runtime verdicts are only meaningful at k = 1.
# `VirtualClock` makes time jump from event to event: a simulated hour costs seconds. The
# runtime's wall-clock measurements are then meaningless (all ~0), so the engine keeps its own
# per-request records on the virtual clock (`SimEngine.outcomes`, scored with `judge_slo`),
# and `SimEngine.now_s()` exposes the clock for a runtime that takes a clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

import anyio
import anyio.lowlevel

__all__ = ["PacedClock", "SimClock", "VirtualClock"]

MAX_SETTLE_YIELDS = 256
"""Upper bound on yields while waiting for the event loop to go quiet."""


class SimClock(Protocol):
    """The simulated time `SimEngine` runs on.

    Contract: `now_s()` never decreases; `sleep_until(t)` returns once `now_s() >= t`;
    `settle()` lets tasks that are ready run (clients react to tokens) without advancing
    time beyond what a real client would take.
    """

    def now_s(self) -> float:
        """Current simulated time in seconds."""
        ...

    async def sleep_until(self, when_s: float) -> None:
        """Wait until simulated time `when_s`."""
        ...

    async def sleep(self, delay_s: float) -> None:
        """Wait `delay_s` simulated seconds (tools use this to take simulated time)."""
        ...

    async def settle(self) -> None:
        """Let every ready task run before the engine decides its next step."""
        ...


class PacedClock:
    """Simulated time = wall-clock time since the first reading, times `speedup`."""

    def __init__(self, speedup: float = 1.0) -> None:
        if not speedup > 0:
            raise ValueError("speedup must be > 0")
        self.speedup = speedup
        self._origin_s: float | None = None

    def now_s(self) -> float:
        """Simulated seconds since the clock was first read."""
        wall_s = time.monotonic()
        if self._origin_s is None:
            self._origin_s = wall_s
        return (wall_s - self._origin_s) * self.speedup

    async def sleep_until(self, when_s: float) -> None:
        """Sleep the wall-clock equivalent of the remaining simulated time."""
        await anyio.sleep(max(0.0, (when_s - self.now_s()) / self.speedup))

    async def sleep(self, delay_s: float) -> None:
        """Sleep `delay_s` simulated seconds."""
        await anyio.sleep(max(0.0, delay_s) / self.speedup)

    async def settle(self) -> None:
        """One scheduling point (a real engine does not wait for its clients)."""
        await anyio.lowlevel.checkpoint()


class _Timer:
    __slots__ = ("event", "is_fired", "when_s")

    def __init__(self, when_s: float) -> None:
        self.when_s = when_s
        self.event = anyio.Event()
        self.is_fired = False


class VirtualClock:
    """Event-driven time: it jumps to the earliest pending timer once nothing else can run.

    The task owning the earliest timer drives: it waits until the event loop has no ready
    task (asyncio's ready queue is empty; on other backends, a fixed number of yields), then
    moves time to its timer, fires every timer due at that instant, and wakes the owner of
    the next one. Tasks blocked on anything but this clock (sockets, real sleeps) do not hold
    time back: tools must sleep with `VirtualClock.sleep` to take simulated time.
    """

    def __init__(self, start_s: float = 0.0) -> None:
        self._now_s = start_s
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._num_settling = 0
        """Tasks inside `settle()`: time must not move while clients are still reacting."""

    def now_s(self) -> float:
        """Current virtual time."""
        return self._now_s

    async def sleep(self, delay_s: float) -> None:
        """Wait `delay_s` virtual seconds."""
        await self.sleep_until(self._now_s + max(0.0, delay_s))

    async def sleep_until(self, when_s: float) -> None:
        """Wait until virtual time `when_s` (see the class docstring for who advances it)."""
        if when_s <= self._now_s:
            await anyio.lowlevel.checkpoint()
            return
        timer = _Timer(when_s)
        heapq.heappush(self._timers, (when_s, next(self._seq), timer))
        try:
            while not timer.is_fired:
                if self._is_top(timer) and not self._num_settling:
                    await self._quiesce(timer)
                    if self._is_top(timer) and not self._num_settling:
                        self._advance()
                        continue
                if not timer.is_fired:
                    await timer.event.wait()
                    timer.event = anyio.Event()
        finally:
            if not timer.is_fired:  # cancelled while waiting
                self._timers = [t for t in self._timers if t[2] is not timer]
                heapq.heapify(self._timers)
                self._wake_top()

    async def settle(self) -> None:
        """Yield until no other task is ready to run; time stands still meanwhile."""
        self._num_settling += 1
        try:
            await self._quiesce(None)
        finally:
            self._num_settling -= 1
            if not self._num_settling:
                self._wake_top()

    def _is_top(self, timer: _Timer) -> bool:
        return bool(self._timers) and self._timers[0][2] is timer

    def _advance(self) -> None:
        when_s = self._timers[0][0]
        self._now_s = max(self._now_s, when_s)
        while self._timers and self._timers[0][0] <= self._now_s:
            _, _, timer = heapq.heappop(self._timers)
            timer.is_fired = True
            timer.event.set()
        self._wake_top()

    def _wake_top(self) -> None:
        if self._timers:
            self._timers[0][2].event.set()

    async def _quiesce(self, timer: _Timer | None) -> None:
        ready = _ready_queue()
        for _ in range(MAX_SETTLE_YIELDS):
            await anyio.sleep(0)
            if timer is not None and (
                timer.is_fired or self._num_settling or not self._is_top(timer)
            ):
                return
            if ready is not None and not ready:
                return


def _ready_queue() -> object | None:
    """The asyncio loop's queue of ready callbacks (None on other backends)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return getattr(loop, "_ready", None)
