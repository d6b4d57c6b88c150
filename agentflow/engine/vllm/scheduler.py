"""agentflow's scheduler inside vLLM's engine-core process: SLO metadata in, EDF order out.

`SLOSchedulerMixin` wraps vLLM's own scheduler and changes only what reference/
vllm_integration.md lists as safe per step. It reads each request's SLO from
`sampling_params.extra_args`, orders waiting and running requests by TTFT deadline, and (when
asked through `additional_config["agentflow"]["trace_path"]`) writes a JSON-lines trace of
requests and step times that the tests, the profiler and the predictor's online fit read.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import IO, Any

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.output import SchedulerOutput
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request

__all__ = ["RequestSLO", "SLOAsyncScheduler", "SLOScheduler", "SLOSchedulerMixin"]

_DEFAULT_TTFT_MS = 10_000.0
_DEFAULT_TPOT_MS = 1_000.0


@dataclass(frozen=True, slots=True)
class RequestSLO:
    """The SLO one request carries into the scheduler."""

    ttft_ms: float
    tpot_ms: float
    program_id: str
    stage: str
    tier: str
    deadline_s: float
    """Wall-clock TTFT deadline: vLLM stamps `arrival_time` with `time.time()`."""

    @classmethod
    def from_request(cls, request: Request) -> RequestSLO:
        """Read the SLO from `extra_args`; requests without one get loose defaults."""
        params = request.sampling_params
        extra: dict[str, Any] = (params.extra_args or {}) if params is not None else {}
        ttft_ms = float(extra.get("ttft_ms", _DEFAULT_TTFT_MS))
        return cls(
            ttft_ms=ttft_ms,
            tpot_ms=float(extra.get("tpot_ms", _DEFAULT_TPOT_MS)),
            program_id=str(extra.get("program_id", "")),
            stage=str(extra.get("stage", "")),
            tier=str(extra.get("tier", "")),
            deadline_s=request.arrival_time + ttft_ms / 1e3,
        )


@dataclass(slots=True)
class _StepShape:
    """What one scheduled step contained, to be timed when its output comes back."""

    started_s: float
    num_prefill_tokens: int
    num_decode_reqs: int
    num_context_tokens: int


class SLOSchedulerMixin(Scheduler):
    """EDF by TTFT deadline over vLLM's scheduler, plus an optional trace of requests and steps.

    Typed as a `Scheduler` subclass so mypy sees the attributes it touches; the concrete classes
    below put it in front of `Scheduler` (CPU, sync) or `AsyncScheduler` (GPU).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        additional = self.vllm_config.additional_config
        settings = additional.get("agentflow", {}) if isinstance(additional, dict) else {}
        trace_path = settings.get("trace_path")
        # Line-buffered and held open for the engine's life; closed in shutdown().
        self._trace: IO[str] | None = (
            open(trace_path, "a", buffering=1) if trace_path else None  # noqa: SIM115
        )
        self._pending_step: _StepShape | None = None
        self._write({"event": "start", "scheduler": type(self).__qualname__})

    def add_request(self, request: Request) -> None:
        """Attach the request's SLO and key the waiting heap by its TTFT deadline."""
        slo = RequestSLO.from_request(request)
        request.agentflow_slo = slo  # type: ignore[attr-defined]
        # The priority heap orders by (priority, arrival): milliseconds of deadline make it EDF.
        request.priority = int(slo.deadline_s * 1e3)
        self._write({"event": "add", "request_id": request.request_id, **asdict(slo)})
        super().add_request(request)

    def schedule(self, throttle_prefills: bool = False) -> SchedulerOutput:
        """Run vLLM's step with running requests in deadline order (earliest first)."""
        # Decodes are served in list order and the FCFS preemption victim is the last entry, so
        # EDF order gives budget to the most urgent requests and preempts the least urgent.
        self.running.sort(key=_deadline_of)
        output = super().schedule(throttle_prefills)
        self._pending_step = self._shape_of(output) if self._trace is not None else None
        return output

    def update_from_output(self, scheduler_output: Any, model_runner_output: Any) -> Any:
        """Pass through, recording the step's duration (sync mode: ≈ forward + sampling)."""
        step, self._pending_step = self._pending_step, None
        if step is not None:
            elapsed_ms = (time.monotonic() - step.started_s) * 1e3
            self._write({"event": "step", **asdict(step), "step_ms": elapsed_ms})
        return super().update_from_output(scheduler_output, model_runner_output)

    def shutdown(self) -> None:
        """Close the trace, then shut vLLM's scheduler down."""
        if self._trace is not None:
            self._trace.close()
            self._trace = None
        super().shutdown()

    def _shape_of(self, output: SchedulerOutput) -> _StepShape:
        num_prefill = num_decode = num_context = 0
        for request_id, num_tokens in output.num_scheduled_tokens.items():
            request = self.requests[request_id]
            # `num_computed_tokens` was already advanced past this step's tokens.
            computed_before = request.num_computed_tokens - num_tokens
            if computed_before < request.num_prompt_tokens:
                num_prefill += num_tokens
                # each new prompt token attends to everything before it
                num_context += num_tokens * computed_before + num_tokens * (num_tokens + 1) // 2
            else:
                num_decode += 1
                num_context += computed_before + num_tokens
        return _StepShape(time.monotonic(), num_prefill, num_decode, num_context)

    def _write(self, record: dict[str, Any]) -> None:
        if self._trace is not None:
            self._trace.write(json.dumps(record) + "\n")


def _deadline_of(request: Request) -> float:
    slo: RequestSLO | None = getattr(request, "agentflow_slo", None)
    return slo.deadline_s if slo is not None else float("inf")


class SLOScheduler(SLOSchedulerMixin, Scheduler):
    """For synchronous engines (the CPU backend forces async scheduling off)."""


class SLOAsyncScheduler(SLOSchedulerMixin, AsyncScheduler):
    """For engines with async scheduling (GPU)."""
