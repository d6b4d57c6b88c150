"""TPOT tiers: the distinct TPOT budgets of a plan, and which tier a request's slack puts it in."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["derive_tiers", "tier_for_slack", "tiers_for_slack"]


def derive_tiers(
    tpots_s: Sequence[float] | npt.NDArray[np.float64],
    margin_s: float = 0.001,
    loosest_extra_s: float = 0.1,
) -> tuple[float, ...]:
    """Tier TPOTs for a set of requests, tightest first (SLOs-Serve §1).

    Each distinct TPOT, shifted down by `margin_s` (never below half of it), is a tier; one extra
    loosest tier sits `loosest_extra_s` above the largest TPOT. Empty input gives no tiers.
    """
    # Round only the distinct values: a plan holds hundreds of requests but a few TPOTs (a
    # set of Python floats finds them faster than `np.unique` on arrays of this size).
    values = set(np.asarray(tpots_s, dtype=np.float64).tolist())
    distinct = sorted({round(t, 9) for t in values})
    if not distinct:
        return ()
    tiers = [max(t - margin_s, 0.5 * t) for t in distinct]
    tiers.append(distinct[-1] + loosest_extra_s)
    return tuple(tiers)


def tier_for_slack(tiers_s: tuple[float, ...], slack_s: float) -> int:
    """The loosest tier whose TPOT fits in `slack_s`; tier 0 when behind schedule.

    A request ahead of schedule (large slack) therefore plans as a looser tier.
    """
    index = int(np.searchsorted(tiers_s, slack_s, side="right")) - 1
    return max(index, 0)


def tiers_for_slack(
    tiers_s: tuple[float, ...] | npt.NDArray[np.float64], slack_s: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Vectorized `tier_for_slack`."""
    index = np.searchsorted(tiers_s, slack_s, side="right") - 1
    return np.maximum(index, 0)
