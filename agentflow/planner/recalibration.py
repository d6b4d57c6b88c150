"""Online recalibration of a fitted step-time model: measured ~ scale * model + bias.

A profile is fitted once per (model, hardware), but the engine it serves may run slower or
faster: another machine of the same name, other load on the cores, a different thread count.
Each measured step is one sample (model's time, measured time). `Recalibration` keeps the
exponentially weighted least-squares fit of `measured = scale * model + bias` in relative
error (a 10 ms decode step counts as much as a 1 s prefill; the planner's TPOT decisions live
on the short ones), and the predictor applies it to every piece.

Guards: a sample is clipped to within `MAX_SAMPLE_RATIO` of what the current prediction times
the median ratio of the last few steps says (one stall of seconds moves the fit a little, not
all the way; a profile eight times off is followed at once, since every step says so); the
scale stays in [1/MAX_SCALE, MAX_SCALE]; the bias never makes an empty step negative or more
than four times the fitted one; and until the samples tell scale from bias apart (all steps of
one shape) a ridge prefers the scale. The starting scale and bias (a saved profile's online
state) hold for the first few steps.
"""

from __future__ import annotations

import math
import statistics
from collections import deque

__all__ = ["MAX_SAMPLE_RATIO", "MAX_SCALE", "Recalibration"]

MAX_SCALE = 16.0
"""The fitted model is never scaled by more than this, either way."""
MAX_SAMPLE_RATIO = 2.0
"""A measured step is clipped to within this factor of its robust expectation."""
_RECENT_STEPS = 5
"""Steps whose median ratio of measured to predicted time centres the clipping."""
_MIN_SAMPLES = 3
"""The starting scale and bias hold until this many steps were measured."""
_MAX_BIAS = 3.0
"""The bias stays within [-1, `_MAX_BIAS`] of the scaled empty step."""
_BIAS_RIDGE = 0.01
"""Relative ridge on the bias: with no information to split the two, the scale takes it."""


class Recalibration:
    """Exponentially weighted relative least squares of measured on modelled step time.

    Args:
        base_s: the fitted model's empty step (sizes the prior and bounds the bias).
        scale: starting scale (from a saved profile's online state, or 1).
        bias_s: starting bias.
        decay: weight kept by the past per sample (0.95: about the last twenty steps).
    """

    __slots__ = (
        "_num_samples",
        "_recent",
        "_su",
        "_suu",
        "_suv",
        "_sv",
        "_svv",
        "base_s",
        "bias_s",
        "decay",
        "scale",
    )

    def __init__(
        self, base_s: float, scale: float = 1.0, bias_s: float = 0.0, decay: float = 0.95
    ) -> None:
        self.base_s = max(base_s, 1e-6)
        self.scale = scale
        self.bias_s = bias_s
        self.decay = decay
        self._recent: deque[tuple[float, float]] = deque(maxlen=_RECENT_STEPS)
        """(model, measured) seconds of the last few steps."""
        self._num_samples = 0
        # Decayed sums over samples of u = model/measured and v = 1/measured: a sample's
        # relative residual is 1 - scale*u - bias*v. (Relative error gives a step much slower
        # than the model, a stall, little leverage; the clipping above bounds fast ones.)
        self._suu = self._suv = self._svv = self._su = self._sv = 0.0

    def observe(self, model_s: float, measured_s: float) -> None:
        """Fold one step in and refit.

        Args:
            model_s: the fitted model's time for the step's features (unscaled, no bias).
            measured_s: the step's wall time (any fixed per-step extra, e.g. a drafter's
                steps, already taken off).
        """
        if not (model_s > 0 and math.isfinite(measured_s)):
            return
        self._recent.append((model_s, max(measured_s, 1e-9)))
        # Ratios against the current fit, not the fit each step was predicted with: after a
        # large correction (a profile from another machine) the old ratios would clip the
        # next steps back towards the old, wrong speed.
        ratios = [m / self._predicted_s(model) for model, m in self._recent]
        expected_s = self._predicted_s(model_s) * statistics.median(ratios)
        measured_s = min(
            max(measured_s, expected_s / MAX_SAMPLE_RATIO), expected_s * MAX_SAMPLE_RATIO
        )
        u, v, d = model_s / measured_s, 1.0 / measured_s, self.decay
        self._suu = d * self._suu + u * u
        self._suv = d * self._suv + u * v
        self._svv = d * self._svv + v * v
        self._su = d * self._su + u
        self._sv = d * self._sv + v
        self._num_samples += 1
        if self._num_samples >= _MIN_SAMPLES:
            self._refit()

    def _predicted_s(self, model_s: float) -> float:
        return max(self.scale * model_s + self.bias_s, 1e-9)

    def _refit(self) -> None:
        a, b, c = self._suu, self._suv, self._svv * (1.0 + _BIAS_RIDGE) + 1e-12
        det = a * c - b * b
        if det <= 0:
            return
        scale = (self._su * c - self._sv * b) / det
        bias_s = (a * self._sv - b * self._su) / det
        scale = min(MAX_SCALE, max(1.0 / MAX_SCALE, scale))
        low_s, high_s = -scale * self.base_s, _MAX_BIAS * scale * self.base_s
        if not low_s <= bias_s <= high_s:  # out of bounds: pin the bias, refit the scale alone
            bias_s = min(high_s, max(low_s, bias_s))
            scale = min(MAX_SCALE, max(1.0 / MAX_SCALE, (self._su - bias_s * b) / a))
        self.scale, self.bias_s = scale, bias_s
