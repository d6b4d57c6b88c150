"""How long a request spends between the driver and a replica's engine, measured per replica.

The engine starts its TTFT clock when a request reaches it, so the pool hands it the caller's
budget less the delivery time. A fixed allowance is wrong on both sides: Ray delivery takes a
few ms on an idle machine and hundreds on a loaded 2-core box or across nodes. Each stream
measures it: the driver's time from sending to the first token, less the engine's own time
from receipt to the first token (both durations, so the nodes' clocks need not agree).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["FirstTokenTiming", "TransitTracker"]


@dataclass(frozen=True, slots=True)
class FirstTokenTiming:
    """Sent by a replica just before a request's first output: its engine-side TTFT."""

    engine_ttft_s: float


class TransitTracker:
    """Recent driver <-> replica delivery times of one replica.

    Args:
        window: samples kept (the most recent).
        quantile: which quantile `allowance_ms` reports (a high one: a deadline missed by
            transit is as missed as any other).
        min_samples: samples needed before the measurement replaces the configured floor.
    """

    def __init__(self, window: int = 64, quantile: float = 0.9, min_samples: int = 4) -> None:
        self._samples_ms: deque[float] = deque(maxlen=window)
        self.quantile = quantile
        self.min_samples = min_samples

    def record(self, driver_ttft_s: float, engine_ttft_s: float) -> None:
        """One request's first token: seen by the driver after `driver_ttft_s`."""
        self._samples_ms.append(max(0.0, driver_ttft_s - engine_ttft_s) * 1e3)

    @property
    def num_samples(self) -> int:
        """Samples in the window."""
        return len(self._samples_ms)

    def allowance_ms(self, floor_ms: float) -> float:
        """The delivery time to plan with: the measured quantile, never below `floor_ms`."""
        if len(self._samples_ms) < self.min_samples:
            return floor_ms
        return max(
            floor_ms, float(np.quantile(np.fromiter(self._samples_ms, float), self.quantile))
        )
