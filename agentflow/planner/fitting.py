"""Fit step-time pieces to measured steps (numpy least squares) and score a predictor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from agentflow.errors import ConfigError
from agentflow.planner.predictor import AffinePiece, StepSample

if TYPE_CHECKING:
    from agentflow.planner.predictor import StepTimePredictor

__all__ = ["evaluate", "fit_pieces", "mape", "r2_score"]

FloatArray = npt.NDArray[np.float64]
_MIN_SAMPLES_PER_PIECE = 5
_MAX_ROUNDS = 30


def _design(samples: Sequence[StepSample]) -> tuple[FloatArray, FloatArray]:
    """Feature matrix (constant first, columns in `AffinePiece` field order) and targets."""
    x = np.array(
        [
            (
                1.0,
                s.num_prefill_tokens,
                s.num_decode_reqs,
                s.num_context_tokens,
                s.num_spec_tokens,
                s.num_prefill_pairs,
            )
            for s in samples
        ],
        dtype=np.float64,
    )
    y = np.array([s.step_time_s for s in samples], dtype=np.float64)
    return x, y


def _nonneg_lstsq(x: FloatArray, y: FloatArray) -> FloatArray:
    """Weighted least squares on relative error with every coefficient >= 0.

    Active-set heuristic: fit, drop the most negative column, refit, until none is negative.
    """
    weights = 1.0 / np.maximum(y, 1e-6)
    active = list(range(x.shape[1]))
    coef = np.zeros(x.shape[1])
    while active:
        sol, *_ = np.linalg.lstsq(x[:, active] * weights[:, None], y * weights, rcond=None)
        worst = int(np.argmin(sol))
        if sol[worst] >= 0:
            coef[:] = 0.0
            coef[active] = sol
            return coef
        del active[worst]
    return coef


def _piece(coef: FloatArray, *, has_pairs: bool) -> AffinePiece:
    """Coefficients in field order; without pair samples the pair price is left unset."""
    constant, prefill, decode, context, spec, pair = (float(c) for c in coef)
    return AffinePiece(constant, prefill, decode, context, spec, pair if has_pairs else None)


def fit_pieces(samples: Sequence[StepSample], num_pieces: int = 1) -> tuple[AffinePiece, ...]:
    """Fit `num_pieces` affine pieces (1 or 2) whose maximum predicts step time.

    One piece is a least-squares fit of relative error with non-negative coefficients. Two
    pieces alternate between fitting each piece to its samples and reassigning each sample to
    the piece that predicts the most (k-plane regression); the split starts at the median
    prefill size. The two-piece model is returned only if it beats one piece.

    Raises:
        ConfigError: too few samples, or `num_pieces` not 1 or 2.
    """
    if num_pieces not in (1, 2):
        raise ConfigError(f"fit: num_pieces must be 1 or 2, got {num_pieces}")
    if len(samples) < _MIN_SAMPLES_PER_PIECE * num_pieces:
        raise ConfigError(
            f"fit: need at least {_MIN_SAMPLES_PER_PIECE * num_pieces} samples, got {len(samples)}"
        )
    x, y = _design(samples)
    has_pairs = bool(np.any(x[:, -1]))
    single = _nonneg_lstsq(x, y)
    if num_pieces == 1:
        return (_piece(single, has_pairs=has_pairs),)
    assign = (x[:, 1] > np.median(x[:, 1])).astype(int)
    coefs = [single, single]
    for _ in range(_MAX_ROUNDS):
        if min(np.sum(assign == k) for k in (0, 1)) < _MIN_SAMPLES_PER_PIECE:
            break
        coefs = [_nonneg_lstsq(x[assign == k], y[assign == k]) for k in (0, 1)]
        new_assign = np.argmax(np.stack([x @ c for c in coefs]), axis=0)
        if np.array_equal(new_assign, assign):
            break
        assign = new_assign
    two_err = _rel_sq_error(np.max(np.stack([x @ c for c in coefs]), axis=0), y)
    if two_err < _rel_sq_error(x @ single, y):
        return (_piece(coefs[0], has_pairs=has_pairs), _piece(coefs[1], has_pairs=has_pairs))
    return (_piece(single, has_pairs=has_pairs),)


def _rel_sq_error(pred: FloatArray, y: FloatArray) -> float:
    return float(np.sum(((pred - y) / np.maximum(y, 1e-6)) ** 2))


def r2_score(predicted: Sequence[float], actual: Sequence[float]) -> float:
    """Coefficient of determination of `predicted` against `actual`."""
    p, a = np.asarray(predicted, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    total = float(np.sum((a - a.mean()) ** 2))
    resid = float(np.sum((a - p) ** 2))
    return 1.0 - resid / total if total > 0 else (1.0 if resid == 0 else 0.0)


def mape(predicted: Sequence[float], actual: Sequence[float]) -> float:
    """Mean absolute percentage error, as a fraction (0.1 = 10 %)."""
    p, a = np.asarray(predicted, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    return float(np.mean(np.abs(p - a) / np.maximum(np.abs(a), 1e-12)))


def evaluate(predictor: StepTimePredictor, samples: Sequence[StepSample]) -> dict[str, float]:
    """Accuracy of `predictor` on `samples`: r2, mape and the share of over-predictions."""
    predicted = [predictor.predict_s(s) for s in samples]
    actual = [s.step_time_s for s in samples]
    over = sum(p >= a for p, a in zip(predicted, actual, strict=True))
    return {
        "r2": r2_score(predicted, actual),
        "mape": mape(predicted, actual),
        "over_share": over / len(samples) if samples else 0.0,
    }
