"""How the scheduler times steps, synchronous (CPU) and with two in flight (async, GPU). No
engine: vLLM's scheduler is stood in for below the timing mixin, and the clock is ours."""

import pytest
from vllm.v1.core.sched.scheduler import Scheduler

from agentflow.engine.vllm import scheduler as scheduler_module
from agentflow.engine.vllm.scheduler import StepTimingMixin, _StepShape


class _Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


class _StubScheduler(Scheduler):  # never constructed: stands in for its two calls
    def schedule(self, throttle_prefills=False):
        return object()

    def update_from_output(self, scheduler_output, model_runner_output):
        return {}


class _Timed(StepTimingMixin, _StubScheduler):
    def __init__(self) -> None:  # skips vLLM's constructor: only the timing state is needed
        self._trace = None
        self._pending_steps = {}
        self._last_output_s = float("-inf")
        self.samples = []

    def _shape_of(self, output, started_s):
        return _StepShape(
            started_s,
            num_prefill_tokens=8,
            num_decode_reqs=1,
            num_context_tokens=9,
            num_prefill_pairs=36,
        )

    def _on_step_timed(self, sample):
        self.samples.append(sample.step_time_s)


@pytest.fixture
def clock(monkeypatch):
    fake = _Clock()
    monkeypatch.setattr(scheduler_module.time, "monotonic", fake)
    return fake


def test_a_synchronous_step_runs_from_its_scheduling_to_its_output(clock):
    timed = _Timed()
    out = timed.schedule()
    clock.now_s += 0.030
    timed.update_from_output(out, None)
    clock.now_s += 0.005  # idle between steps: not charged to the next one
    out = timed.schedule()
    clock.now_s += 0.020
    timed.update_from_output(out, None)
    assert timed.samples == pytest.approx([0.030, 0.020])


def test_with_two_steps_in_flight_each_is_timed_from_the_previous_output(clock):
    timed = _Timed()
    first = timed.schedule()
    second = timed.schedule()  # planned while the first one runs
    clock.now_s += 0.030
    timed.update_from_output(first, None)
    clock.now_s += 0.030
    timed.update_from_output(second, None)
    # Not 60 ms for the second: it could only start running when the first was done.
    assert timed.samples == pytest.approx([0.030, 0.030])
