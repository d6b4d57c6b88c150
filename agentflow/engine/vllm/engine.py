"""The Engine protocol on real vLLM: `AsyncLLM` with our scheduler class in its engine core."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from agentflow.engine.chat import Messages, render_conversation
from agentflow.engine.interface import GenerationRequest, TokenDelta
from agentflow.engine.vllm.config import LANE_KEY, VLLMEngineConfig
from agentflow.engine.vllm.cpus import default_omp_bind
from agentflow.engine.vllm.dtype import resolve_dtype
from agentflow.errors import EngineError, RequestFailed

if TYPE_CHECKING:
    from vllm.v1.engine.async_llm import AsyncLLM

    from agentflow.planner import StepTimePredictor

__all__ = ["VLLMEngine", "stop_on_sigterm"]

_SCHEDULER_MODULE = "agentflow.engine.vllm.scheduler"

logger = logging.getLogger(__name__)


def _set_engine_environment(config: VLLMEngineConfig) -> None:
    """Environment vLLM reads at import and in its child processes: offline, no telemetry."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["VLLM_NO_USAGE_STATS"] = "1"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ.setdefault(
        "VLLM_CPU_OMP_THREADS_BIND", config.omp_threads_bind or default_omp_bind()
    )
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def stop_on_sigterm() -> None:
    """Route SIGTERM through Ctrl-C, so `async with VLLMEngine(...)` shuts the engine down.

    vLLM's engine core does not exit when its parent dies: a process killed by SIGTERM with
    the default handler leaves it running (and spinning a core) forever. Only the main thread
    may set handlers, and a handler the program set itself is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
        # A background job inherits SIGINT ignored; asyncio then installs no Ctrl-C handler
        # and a stop would land as a bare KeyboardInterrupt in whatever task runs (which may
        # record it as that task's failure and go on). Explicit SIGINTs are stop requests too.
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _interrupt(signum: int, frame: Any) -> None:
    # Run whatever Ctrl-C would run (asyncio's handler cancels the main task, so `async with`
    # blocks exit cleanly). Not by sending ourselves SIGINT: a process started in the
    # background (a CI runner, `cmd &` in a script) inherits SIGINT ignored, and SIGTERM
    # would then do nothing at all.
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


class VLLMEngine:
    """One vLLM engine serving SLO-tagged requests.

    The engine core runs in a child process (vLLM's design); `shutdown()` stops it and its
    workers. Use as `async with VLLMEngine(config) as engine:` to guarantee that.
    """

    name = "vllm"

    def __init__(
        self, config: VLLMEngineConfig, *, predictor: StepTimePredictor | None = None
    ) -> None:
        self._has_profile = predictor is not None
        """Whether the step-time model describes this machine (passed in, or a cached fit)."""
        if predictor is None:
            # Imported here: the engine-core process imports this package for the scheduler only.
            from agentflow.engine.vllm.profile_store import load_profile
            from agentflow.planner import StepTimePredictor

            predictor = load_profile(config.model, config.dtype)
            self._has_profile = predictor is not None
            predictor = predictor or StepTimePredictor.default_cpu()
        self.config = config
        self.predictor = predictor
        self._llm: AsyncLLM | None = None
        self._tokenizer: Any = None

    async def __aenter__(self) -> VLLMEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    @property
    def scheduler_cls(self) -> str | None:
        """Dotted path of the scheduler class the engine core loads (None: vLLM's own).

        The stock policies run vLLM's own class, or with `trace_path` set a subclass that only
        times steps into the trace.
        """
        if self.config.policy == "agentflow":
            prefix = "SLO"
        elif self.config.trace_path is not None:
            prefix = "Traced"  # stock decisions, step times in the trace
        else:
            return None
        from vllm.platforms import current_platform

        # The CPU platform forces async scheduling off: subclass the sync Scheduler there.
        suffix = "Scheduler" if current_platform.is_cpu() else "AsyncScheduler"
        return f"{_SCHEDULER_MODULE}.{prefix}{suffix}"

    async def start(self) -> None:
        """Load the model and start the engine core (tens of seconds on CPU)."""
        if self._llm is not None:
            return
        _set_engine_environment(self.config)
        stop_on_sigterm()
        try:
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise EngineError("vLLM is not installed: install agentflow[cpu] or [gpu]") from exc
        cfg = self.config
        additional: dict[str, Any] = {
            "agentflow": {
                "planner": cfg.planner,
                "predictor": self.predictor.to_json(),
                "tpot_tolerance": cfg.tpot_tolerance,
                "spec_acceptance_prior": cfg.spec_acceptance_prior,
            }
        }
        if cfg.trace_path is not None:
            additional["agentflow"]["trace_path"] = str(cfg.trace_path)
        args = AsyncEngineArgs(
            model=str(cfg.model),
            tokenizer=str(cfg.model),
            load_format=cfg.load_format,
            dtype=resolve_dtype(cfg.dtype),
            enforce_eager=cfg.enforce_eager,
            kv_cache_memory_bytes=cfg.kv_cache_mib * 2**20,
            max_model_len=cfg.max_model_len,
            max_num_seqs=cfg.max_num_seqs,
            max_num_batched_tokens=cfg.max_num_batched_tokens,
            enable_chunked_prefill=True,
            scheduling_policy="fcfs" if cfg.policy == "fcfs" else "priority",
            scheduler_cls=self.scheduler_cls,
            additional_config=additional,
            speculative_config=cfg.speculative_config,
            seed=cfg.seed,
        )
        try:
            self._llm = AsyncLLM.from_engine_args(args)
        except Exception as exc:
            raise EngineError(f"vLLM failed to start with model {cfg.model}: {exc}") from exc
        self._tokenizer = self._llm.get_tokenizer()
        if cfg.warmup:
            await self._warm_up()
        if cfg.measure_speed and not self._has_profile:
            await self._measure_speed()

    async def _warm_up(self) -> None:
        for index, length in enumerate((16, 128, 512, 1024)):
            prompt = " ".join(["warm"] * length)
            # Counted in tokens: a small tokenizer can split each word into several.
            if len(self._tokenizer.encode(prompt)) >= self.config.max_model_len // 2:
                break
            request = GenerationRequest.unconstrained(
                f"agentflow-warmup-{index}", prompt, 2, label="warmup"
            )
            async for _ in self.stream(request):
                pass

    async def _measure_speed(self, num_prompt_words: int = 64, num_tokens: int = 12) -> None:
        """Scale the frontend's (packaged) step-time model to one lone request timed here.

        Its first token times a prefill step, each later one a lone decode step; the model's
        online recalibration takes them as measured steps (see `VLLMEngineConfig.measure_speed`).
        Frontend timings include a millisecond or so of inter-process transit per step.
        """
        from agentflow.planner import StepSample, chunk_context_tokens

        prompt = " ".join(["speed"] * num_prompt_words)
        num_prompt = len(self._tokenizer.encode(prompt))
        request = GenerationRequest.unconstrained(
            "agentflow-speed", prompt, num_tokens, label="warmup"
        )
        before_ms = self.lone_decode_ms(num_prompt)
        pairs = chunk_context_tokens(0, num_prompt)
        last_s = time.perf_counter()
        num_done = 0
        async for delta in self.stream(request):
            if delta.num_tokens == 0:
                continue
            now_s = time.perf_counter()
            if num_done == 0:  # the first token came with the prefill step
                self.predictor.observe(StepSample(num_prompt, 0, 0, 0, now_s - last_s, pairs))
            else:
                step_s = (now_s - last_s) / delta.num_tokens
                for _ in range(delta.num_tokens):
                    self.predictor.observe(StepSample(0, 1, num_prompt + num_done, 0, step_s))
            num_done += delta.num_tokens
            last_s = now_s
        logger.warning(
            "agentflow: no `agentflow profile` fit for %s on this machine: relative budgets"
            " follow a lone decode step measured now (%.0f ms; the packaged profile says %.0f ms)."
            " `agentflow profile --quick` fits one.",
            self.config.model.name,
            self.lone_decode_ms(num_prompt),
            before_ms,
        )

    def _require_llm(self) -> AsyncLLM:
        if self._llm is None:
            raise EngineError("engine is not started: await engine.start() first")
        return self._llm

    def render_prompt(self, prompt: str, *, use_chat_template: bool = True) -> str:
        """The text the engine prefills: the prompt as one user turn when a template exists."""
        self._require_llm()
        if use_chat_template and getattr(self._tokenizer, "chat_template", None):
            return self.render_messages([{"role": "user", "content": prompt}])
        return prompt

    def render_messages(self, messages: Messages) -> str:
        """A conversation as the text the engine prefills, ready for the assistant's turn."""
        self._require_llm()
        return render_conversation(self._tokenizer, messages)

    def count_prompt_tokens(self, prompt: str, *, use_chat_template: bool = True) -> int:
        """Number of tokens the engine will prefill for `prompt`."""
        text = self.render_prompt(prompt, use_chat_template=use_chat_template)
        return len(self._tokenizer.encode(text))

    def isolated_prefill_ms(self, num_tokens: int) -> float:
        """Predicted prefill time of a lone `num_tokens` prompt, from the step-time predictor."""
        return self.predictor.isolated_prefill_s(num_tokens) * 1e3

    def lone_decode_ms(self, num_context_tokens: int) -> float:
        """Predicted decode step of a lone request, from the step-time predictor."""
        return self.predictor.lone_decode_s(num_context_tokens) * 1e3

    @property
    def kv_cache_shape(self) -> tuple[int, int]:
        """(KV blocks, tokens per block) that the started engine allocated.

        The frontend learns the block count from the engine core at start-up and keeps it in
        its `vllm_config`; a planner outside the engine (the pool's router) needs it.

        Raises:
            EngineError: the engine is not started, or vLLM reported no usable KV size.
        """
        cache = self._require_llm().vllm_config.cache_config
        num_blocks, block_size = cache.num_gpu_blocks, cache.block_size
        if not isinstance(num_blocks, int) or not isinstance(block_size, int) or num_blocks < 1:
            raise EngineError(f"vLLM reported no usable KV cache size ({num_blocks} blocks)")
        return num_blocks, block_size

    async def stream(self, request: GenerationRequest) -> AsyncIterator[TokenDelta]:
        """Submit one request and yield its output deltas; the last one has `finished`."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        llm = self._require_llm()
        params = SamplingParams(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            ignore_eos=request.ignore_eos,
            stop=list(request.stop) or None,
            top_p=request.top_p,
            seed=request.seed,
            presence_penalty=request.presence_penalty,
            frequency_penalty=request.frequency_penalty,
            output_kind=RequestOutputKind.DELTA,
            extra_args=request.extra_args(),
        )
        prompt = self.render_prompt(request.prompt, use_chat_template=request.use_chat_template)
        # Stock-vLLM EDF baseline: the priority heap keyed by the TTFT deadline in ms. (Our
        # scheduler sets the same key itself, from extra_args.)
        priority = int((time.time() * 1e3) + request.ttft_ms) if self.config.policy == "edf" else 0
        outputs = llm.generate(prompt, params, request.request_id, priority=priority)
        try:
            async for output in outputs:
                completion = output.outputs[0]
                lane = (output.kv_transfer_params or {}).get(LANE_KEY)
                yield TokenDelta(
                    text=completion.text,
                    num_tokens=len(completion.token_ids),
                    finished=output.finished,
                    finish_reason=completion.finish_reason if output.finished else None,
                    lane=lane,
                )
        except (EngineError, GeneratorExit):
            raise
        except Exception as exc:
            raise RequestFailed(
                str(exc) or type(exc).__name__, request_id=request.request_id
            ) from exc
        finally:
            # Closing vLLM's generator aborts the request now if it has not finished (our
            # consumer left); left to the garbage collector, it would run on for a while.
            await outputs.aclose()

    async def shutdown(self) -> None:
        """Stop the engine core and its workers. Safe to call twice."""
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.shutdown()
