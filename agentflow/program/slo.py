"""Latency objectives of one LLM stage: TTFT and TPOT, each absolute or relative to the engine."""

from __future__ import annotations

import math
import re
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["SLO", "parse_budget"]

_SLOWDOWN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[xX×]\s*$")

PositiveMs = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Slowdown = Annotated[float, Field(ge=1.0, allow_inf_nan=False)]


class SLO(BaseModel):
    """A stage's latency budget.

    Each of TTFT and TPOT is given once: in milliseconds, or as a slowdown relative to what the
    serving engine needs for the request alone (SLOs-Serve's convention for TTFT):
    - "3x" TTFT: the first token may take three times the prompt's prefill on an idle engine;
    - "3x" TPOT: each later token may take three times one decode step of the request alone,
      at its longest context (prompt plus `max_tokens`).
    A slowdown follows the engine's step-time profile, so one program declares the same
    tightness on a laptop CPU and on a GPU pool.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ttft_ms: PositiveMs | None = None
    """Time to first token, in milliseconds from the request's arrival."""
    ttft_slowdown: Slowdown | None = None
    """Time to first token as a multiple of the isolated prefill time (≥ 1)."""
    tpot_ms: PositiveMs | None = None
    """Time per output token after the first, in milliseconds."""
    tpot_slowdown: Slowdown | None = None
    """Time per output token as a multiple of a lone decode step (≥ 1)."""

    @model_validator(mode="after")
    def _one_form_each(self) -> Self:
        if (self.ttft_ms is None) == (self.ttft_slowdown is None):
            raise ValueError("give exactly one of ttft_ms or ttft (a slowdown such as '3x')")
        if (self.tpot_ms is None) == (self.tpot_slowdown is None):
            raise ValueError("give exactly one of tpot_ms or tpot (a slowdown such as '3x')")
        return self

    def resolve_ttft_ms(self, isolated_prefill_ms: float) -> float:
        """The TTFT budget in ms for a prompt whose isolated prefill takes `isolated_prefill_ms`."""
        if self.ttft_ms is not None:
            return self.ttft_ms
        assert self.ttft_slowdown is not None
        return self.ttft_slowdown * isolated_prefill_ms

    def resolve_tpot_ms(self, lone_decode_ms: float) -> float:
        """The TPOT budget in ms for a request whose lone decode step takes `lone_decode_ms`."""
        if self.tpot_ms is not None:
            return self.tpot_ms
        assert self.tpot_slowdown is not None
        return self.tpot_slowdown * lone_decode_ms

    def describe_ttft(self) -> str:
        """Human-readable TTFT budget, e.g. '300 ms' or '3x prefill'."""
        if self.ttft_ms is not None:
            return f"{self.ttft_ms:g} ms"
        return f"{self.ttft_slowdown:g}x prefill"

    def describe_tpot(self) -> str:
        """Human-readable TPOT budget, e.g. '50 ms' or '3x decode'."""
        if self.tpot_ms is not None:
            return f"{self.tpot_ms:g} ms"
        return f"{self.tpot_slowdown:g}x decode"


def parse_budget(
    value: float | int | str | None, *, field: str
) -> tuple[float | None, float | None]:
    """Split a user's budget declaration into `(milliseconds, slowdown)`.

    Numbers are milliseconds; strings like "3x" are slowdowns. `field` ("ttft" or "tpot") names
    the budget in the error. Raises ValueError otherwise.
    """
    if value is None:
        return None, None
    expected = f"{field} must be milliseconds or a slowdown like '3x', got {value!r}"
    if isinstance(value, bool):
        raise ValueError(expected)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{field} must be finite, got {value!r}")
        return float(value), None
    match = _SLOWDOWN.match(value)
    if match is None:
        raise ValueError(expected)
    return None, float(match.group(1))
