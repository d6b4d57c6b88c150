"""Latency objectives of one LLM stage: TTFT (absolute or a slowdown) and TPOT."""

from __future__ import annotations

import math
import re
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["SLO", "parse_ttft"]

_SLOWDOWN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[xX×]\s*$")

PositiveMs = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class SLO(BaseModel):
    """A stage's latency budget.

    Exactly one of `ttft_ms` and `ttft_slowdown` is set. A slowdown is relative to the isolated
    prefill time of the stage's prompt on the serving engine (SLOs-Serve's convention): "3x" means
    the first token may take three times as long as the prompt's prefill on an idle engine.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ttft_ms: PositiveMs | None = None
    """Time to first token, in milliseconds from the request's arrival."""
    ttft_slowdown: Annotated[float, Field(ge=1.0, allow_inf_nan=False)] | None = None
    """Time to first token as a multiple of the isolated prefill time (≥ 1)."""
    tpot_ms: PositiveMs
    """Time per output token after the first, in milliseconds."""

    @model_validator(mode="after")
    def _one_ttft_form(self) -> Self:
        if (self.ttft_ms is None) == (self.ttft_slowdown is None):
            raise ValueError("give exactly one of ttft_ms or ttft (a slowdown such as '3x')")
        return self

    def resolve_ttft_ms(self, isolated_prefill_ms: float) -> float:
        """The TTFT budget in ms for a prompt whose isolated prefill takes `isolated_prefill_ms`."""
        if self.ttft_ms is not None:
            return self.ttft_ms
        assert self.ttft_slowdown is not None
        return self.ttft_slowdown * isolated_prefill_ms

    def describe_ttft(self) -> str:
        """Human-readable TTFT budget, e.g. '300 ms' or '3x prefill'."""
        if self.ttft_ms is not None:
            return f"{self.ttft_ms:g} ms"
        return f"{self.ttft_slowdown:g}x prefill"


def parse_ttft(value: float | int | str | None) -> tuple[float | None, float | None]:
    """Split a user's TTFT declaration into `(ttft_ms, ttft_slowdown)`.

    Numbers are milliseconds; strings like "3x" are slowdowns. Raises ValueError otherwise.
    """
    if value is None:
        return None, None
    if isinstance(value, bool):
        raise ValueError(f"ttft must be milliseconds or a slowdown like '3x', got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"ttft must be finite, got {value!r}")
        return float(value), None
    match = _SLOWDOWN.match(value)
    if match is None:
        raise ValueError(f"ttft must be milliseconds or a slowdown like '3x', got {value!r}")
    return None, float(match.group(1))
