"""Engine specs: how a replica actor builds its engine, and what the router plans with.

A spec is a small picklable value. The pool ships it to every replica actor, which calls
`build()` and, once the engine has started, `planner_view(engine)`: the step-time model and
limits the router needs to ask "could this replica admit that request?" without an RPC. The
driver keeps the spec too, for the two synchronous questions of the `Engine` protocol (prompt
length, isolated prefill time), which it answers locally.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from agentflow.engine.chat import ChatRenderer, render_conversation, role_lines
from agentflow.engine.interface import Engine
from agentflow.engine.sim import (
    PacedClock,
    PolicyOptions,
    SimEngine,
    SimEngineConfig,
    get_profile,
)
from agentflow.errors import ConfigError
from agentflow.planner import PlannerConfig, StepTimePredictor

if TYPE_CHECKING:
    from agentflow.engine.vllm import VLLMEngine, VLLMEngineConfig

__all__ = ["EngineSpec", "FactorySpec", "PlannerView", "PromptCounter", "SimSpec", "VLLMSpec"]

PromptCounter = Callable[[str, bool], int]
"""(prompt, use_chat_template) -> prompt tokens the engine will prefill."""


@dataclass(frozen=True, slots=True)
class PlannerView:
    """One replica as its planner sees it: the step-time model and the engine's limits."""

    predictor_json: str
    """`StepTimePredictor.to_json()` of the replica's engine."""
    config: PlannerConfig

    def predictor(self) -> StepTimePredictor:
        """A fresh predictor (each mirror gets its own: predictors carry online state)."""
        return StepTimePredictor.from_json(self.predictor_json)


class EngineSpec(Protocol):
    """How to build one replica's engine.

    Contract: the value is pickled to every replica actor. `build()` and `planner_view()` run
    inside the actor process (so they may import vLLM there); `make_prompt_counter()` runs in
    the driver and must be cheap to call and to use. `planner_view` returns None for an engine
    without a planner: the router then cannot judge admission and treats the replica as always
    able to admit.
    """

    @property
    def name(self) -> str:
        """Label of the backend (e.g. "vllm")."""
        ...

    def build(self, replica_id: int) -> Engine:
        """A new, not yet started engine for replica `replica_id` (0-based)."""
        ...

    def planner_view(self, engine: Engine) -> PlannerView | None:
        """The started engine's planner model and limits."""
        ...

    def step_time_json(self, engine: Engine) -> str | None:
        """The started engine's step-time model (`StepTimePredictor.to_json()`).

        Whatever the engine's scheduler: the driver prices relative SLO budgets with it.
        None: not known.
        """
        ...

    def make_prompt_counter(self) -> PromptCounter:
        """A driver-side counter of prompt tokens, equal to the engine's own count."""
        ...

    def make_chat_renderer(self) -> ChatRenderer:
        """A driver-side renderer of conversations into the text the engine prefills."""
        ...


def _count_words(prompt: str, use_chat_template: bool = True) -> int:
    del use_chat_template
    return max(1, len(prompt.split()))


@dataclass(frozen=True, slots=True)
class FactorySpec:
    """Any engine from a factory (fakes, custom backends); the planner view is given.

    Args:
        name: label of the backend.
        factory: builds the engine inside the actor (must be picklable: a top-level callable
            or a `functools.partial` of one).
        view: the planner view of every replica (None: no admission judgement).
        count_tokens: prompt-token counter used by the driver (default: whitespace words).
    """

    name: str
    factory: Callable[[], Engine]
    view: PlannerView | None = None
    count_tokens: PromptCounter = field(default=_count_words)

    def build(self, replica_id: int) -> Engine:
        """Call the factory (the same for every replica)."""
        del replica_id
        return self.factory()

    def planner_view(self, engine: Engine) -> PlannerView | None:
        """The view given at construction."""
        del engine
        return self.view

    def step_time_json(self, engine: Engine) -> str | None:
        """The given view's model (None without a view)."""
        del engine
        return None if self.view is None else self.view.predictor_json

    def make_prompt_counter(self) -> PromptCounter:
        """The counter given at construction."""
        return self.count_tokens

    def make_chat_renderer(self) -> ChatRenderer:
        """`role: content` lines (a factory's engine has no known chat template)."""
        return role_lines


@dataclass(frozen=True, slots=True)
class SimSpec:
    """A simulated engine per replica (`SimEngine` paced to the wall clock).

    Args:
        profile: simulator profile name (`agentflow.engine.sim.list_profiles()`).
        policy: the simulated scheduler ("agentflow", "vllm", "sarathi").
        options: policy options (one replica each: `num_replicas` is ignored).
        speedup: simulated seconds per wall-clock second (1: the runtime's timings are exact).
    """

    profile: str = "cpu"
    policy: str = "agentflow"
    options: PolicyOptions | None = None
    speedup: float = 1.0
    name: str = "sim"

    def build(self, replica_id: int) -> SimEngine:
        """A `SimEngine` on a paced clock."""
        del replica_id
        options = replace(self.options or PolicyOptions(), num_replicas=1)
        config = SimEngineConfig(policy=self.policy, options=options)
        return SimEngine(get_profile(self.profile), config, clock=PacedClock(self.speedup))

    def planner_view(self, engine: Engine) -> PlannerView | None:
        """The profile's predictor and limits, as the simulated agentflow policy plans."""
        del engine
        if self.policy != "agentflow":
            return None
        profile = get_profile(self.profile)
        options = self.options or PolicyOptions()
        return PlannerView(
            predictor_json=profile.predictor().to_json(),
            config=PlannerConfig(
                kv_blocks_total=profile.kv_blocks_total,
                block_size=profile.block_size,
                max_num_batched_tokens=profile.max_num_batched_tokens,
                max_num_seqs=min(profile.max_num_seqs, profile.max_num_batched_tokens),
                planner="exact" if options.planner == "exact" else "fast",
                horizon_s=options.max_step_s,
            ),
        )

    def step_time_json(self, engine: Engine) -> str | None:
        """The profile's predictor: the simulated engine's steps take what it says."""
        del engine
        return get_profile(self.profile).predictor().to_json()

    def make_prompt_counter(self) -> PromptCounter:
        """Whitespace words, the simulator's tokenizer."""
        return _count_words

    def make_chat_renderer(self) -> ChatRenderer:
        """`role: content` lines (the simulator has no chat template)."""
        return role_lines


@dataclass(frozen=True, slots=True)
class VLLMSpec:
    """A real vLLM engine per replica, with our scheduler in its engine core.

    Args:
        config: the engine settings, identical for every replica.
        predictor_json: the step-time model (None: the model's stored profile, else the CPU
            default, as `VLLMEngine` does).
    """

    config: VLLMEngineConfig
    predictor_json: str | None = None
    cpu_binds: tuple[str, ...] = ()
    """CPU-engine thread binding per replica (`VLLM_CPU_OMP_THREADS_BIND`, e.g. ("0", "1")
    gives replica i core i, cycling); empty: `config.omp_threads_bind` for all."""
    name: str = "vllm"

    def build(self, replica_id: int) -> VLLMEngine:
        """A `VLLMEngine` (vLLM is imported in the actor process only)."""
        from agentflow.engine.vllm import VLLMEngine

        predictor = (
            StepTimePredictor.from_json(self.predictor_json) if self.predictor_json else None
        )
        config = self.config
        if self.cpu_binds:
            bind = self.cpu_binds[replica_id % len(self.cpu_binds)]
            config = config.model_copy(update={"omp_threads_bind": bind})
        return VLLMEngine(config, predictor=predictor)

    def planner_view(self, engine: Engine) -> PlannerView | None:
        """The predictor and the KV size the engine actually allocated."""
        from agentflow.engine.vllm import VLLMEngine

        if self.config.policy != "agentflow" or self.config.planner == "none":
            return None
        if not isinstance(engine, VLLMEngine):
            raise ConfigError(f"VLLMSpec: expected a VLLMEngine, got {type(engine).__name__}")
        predictor = engine.predictor
        num_blocks, block_size = engine.kv_cache_shape
        cfg = self.config
        return PlannerView(
            predictor_json=predictor.to_json(),
            config=PlannerConfig(
                kv_blocks_total=num_blocks,
                block_size=block_size,
                max_num_batched_tokens=cfg.max_num_batched_tokens,
                max_num_seqs=min(cfg.max_num_seqs, cfg.max_num_batched_tokens),
                planner=cfg.planner if cfg.planner != "none" else "fast",
            ),
        )

    def step_time_json(self, engine: Engine) -> str | None:
        """The engine's predictor, with the speed it measured at start (`measure_speed`)."""
        from agentflow.engine.vllm import VLLMEngine

        if not isinstance(engine, VLLMEngine):
            raise ConfigError(f"VLLMSpec: expected a VLLMEngine, got {type(engine).__name__}")
        return engine.predictor.to_json()

    def make_prompt_counter(self) -> PromptCounter:
        """The model's tokenizer, loaded in the driver (transformers; no vLLM import)."""
        tokenizer = self._driver_tokenizer()
        has_template = bool(getattr(tokenizer, "chat_template", None))

        def count(prompt: str, use_chat_template: bool = True) -> int:
            text = prompt
            if use_chat_template and has_template:
                text = render_conversation(tokenizer, [{"role": "user", "content": prompt}])
            return len(tokenizer.encode(text))

        return count

    def make_chat_renderer(self) -> ChatRenderer:
        """The model's chat template, applied in the driver as each replica would."""
        tokenizer = self._driver_tokenizer()
        return lambda messages: render_conversation(tokenizer, messages)

    def _driver_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.config.model))
