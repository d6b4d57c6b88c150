"""Token-length distributions: empirical (resampled from a trace) and clipped log-normal."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from agentflow.errors import ConfigError

__all__ = ["EmpiricalLengths", "LengthDistribution", "LogNormalLengths"]

IntArray = npt.NDArray[np.int64]


class LengthDistribution(Protocol):
    """Draws token counts."""

    def sample(self, rng: np.random.Generator, n: int) -> IntArray:
        """`n` token counts, each >= 1."""
        ...


class LogNormalLengths:
    """Log-normal token counts with a given median, clipped to [lo, hi].

    Args:
        median: the distribution's median (exp of the log-mean).
        sigma: standard deviation of the log.
        lo: smallest count.
        hi: largest count.
    """

    def __init__(self, median: float, sigma: float, lo: int, hi: int) -> None:
        if not (median > 0 and sigma >= 0 and 1 <= lo <= hi):
            raise ConfigError("lengths: need median > 0, sigma >= 0 and 1 <= lo <= hi")
        self.median, self.sigma, self.lo, self.hi = median, sigma, lo, hi

    def sample(self, rng: np.random.Generator, n: int) -> IntArray:
        """`n` clipped log-normal counts."""
        values = rng.lognormal(np.log(self.median), self.sigma, size=n)
        return np.clip(np.rint(values), self.lo, self.hi).astype(np.int64)


class EmpiricalLengths:
    """Counts resampled (with replacement) from observed values, clipped to [lo, hi]."""

    def __init__(self, values: npt.ArrayLike, lo: int = 1, hi: int = 1 << 20) -> None:
        array = np.asarray(values, dtype=np.int64)
        if array.size == 0:
            raise ConfigError("lengths: empirical distribution needs values")
        self.values = np.clip(array, lo, hi)

    def sample(self, rng: np.random.Generator, n: int) -> IntArray:
        """`n` resampled counts."""
        return self.values[rng.integers(0, len(self.values), size=n)]
