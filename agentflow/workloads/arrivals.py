"""Arrival processes: Poisson, and windows of a real trace time-scaled to a target rate.

Capacity search sweeps the rate by time-scaling one fixed window of arrivals, as SLOs-Serve
does: the same requests arrive in the same order and proportions, only faster or slower, so
attainment changes because of load alone. Bursts in a real trace stay bursts at every rate.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from agentflow.errors import ConfigError

__all__ = ["ArrivalProcess", "PoissonArrivals", "TraceArrivals", "time_scale"]

FloatArray = npt.NDArray[np.float64]


class ArrivalProcess(Protocol):
    """Arrival times of `n` requests at mean rate `rate_rps`, starting near 0."""

    name: str

    def times(self, n: int, rate_rps: float, rng: np.random.Generator) -> FloatArray:
        """Sorted arrival times in seconds."""
        ...


def _check(n: int, rate_rps: float) -> None:
    if n < 0 or not (np.isfinite(rate_rps) and rate_rps > 0):
        raise ConfigError(f"arrivals: need n >= 0 and a positive rate, got {n}, {rate_rps!r}")


def time_scale(times_s: FloatArray, rate_rps: float) -> FloatArray:
    """Rescale arrival times (from 0) so that their mean rate is `rate_rps`.

    The mean rate of n arrivals is n per `span * n / (n - 1)`: the span plus one mean gap, so a
    window of a trace and the trace continuing after it have the same rate.
    """
    n = len(times_s)
    if n < 2:
        return np.zeros(n)
    start = times_s - times_s[0]
    span = float(start[-1])
    if span <= 0:
        return np.zeros(n)
    target_span = (n - 1) / rate_rps
    return np.asarray(start * (target_span / span), dtype=np.float64)


class PoissonArrivals:
    """Exponential gaps at the given rate."""

    name = "poisson"

    def times(self, n: int, rate_rps: float, rng: np.random.Generator) -> FloatArray:
        """Sorted arrival times in seconds, the first at 0."""
        _check(n, rate_rps)
        if n == 0:
            return np.zeros(0)
        gaps = rng.exponential(1.0 / rate_rps, size=n)
        gaps[0] = 0.0
        return np.asarray(np.cumsum(gaps), dtype=np.float64)


class TraceArrivals:
    """A window of `n` consecutive arrivals of a real trace, time-scaled to the rate.

    Args:
        name: label (e.g. "azure_code").
        times_s: the trace's arrival times, sorted.
        offset: index of the window's first request.
    """

    def __init__(self, name: str, times_s: FloatArray, offset: int = 0) -> None:
        self.name = name
        self._times = np.asarray(times_s, dtype=np.float64)
        self.offset = offset

    def window(self, n: int) -> slice:
        """The rows of the trace the window uses (wraps to the start if it runs out)."""
        if n > len(self._times):
            raise ConfigError(f"arrivals: {self.name} has {len(self._times)} requests, not {n}")
        start = min(self.offset, len(self._times) - n)
        return slice(start, start + n)

    def times(self, n: int, rate_rps: float, rng: np.random.Generator) -> FloatArray:
        """The window's arrival times, time-scaled to `rate_rps` (`rng` is unused)."""
        del rng
        _check(n, rate_rps)
        return time_scale(self._times[self.window(n)], rate_rps)
