"""A deployment: the instances of one policy, how requests enter, and KV hand-offs between them.

Colocated deployments (vLLM, Sarathi-Serve, agentflow) send every request to one of their
instances: round robin when there are several replicas, except that a follow-up request goes
where its parent went (where the parent's KV may still be cached). A disaggregated deployment
(DistServe) sends requests to a prefill instance; when the prefill samples the first token the
request's KV travels to a decode instance, which serves the rest. The transfer is modelled
simply, as a delay of `latency + prompt KV bytes / link bandwidth` that occupies neither
instance (DistServe overlaps transfers with compute; over NVLink within a server this is a few
ms per request).

The deployment is the shared driver of both simulator faces: `simulate()` calls it from a plain
event loop, `SimEngine` from the async event loop.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agentflow.engine.sim.instance import Instance
from agentflow.engine.sim.request import FinishReason, SimRequest

__all__ = ["Deployment", "Progress"]

_MAX_HOMES = 1 << 16
"""Entry instances remembered for follow-ups (oldest forgotten first)."""


@dataclass(slots=True)
class Progress:
    """What happened while the deployment advanced to a time."""

    emitted: list[SimRequest] = field(default_factory=list)
    """Requests that got at least one token (a request may appear once per step)."""
    finished: list[SimRequest] = field(default_factory=list)


class Deployment:
    """The instances of one policy, and the moves of requests between them.

    Args:
        name: the policy's name.
        entry: instances that take new requests (round robin).
        decode: decode instances of a disaggregated deployment (None: colocated).
        transfer_s: KV hand-off delay per request (disaggregated only).
    """

    def __init__(
        self,
        name: str,
        entry: Sequence[Instance],
        *,
        decode: Sequence[Instance] | None = None,
        transfer_s: Callable[[SimRequest], float] | None = None,
    ) -> None:
        if not entry:
            raise ValueError("a deployment needs at least one instance")
        self.name = name
        self.entry = list(entry)
        self.decode = list(decode or [])
        self.instances = [*self.entry, *self.decode]
        self._transfer_s = transfer_s or (lambda _request: 0.0)
        self._next_entry = itertools.cycle(range(len(self.entry)))
        self._next_decode = itertools.cycle(range(max(1, len(self.decode))))
        self._transfers: list[tuple[float, int, SimRequest, Instance]] = []
        self._seq = itertools.count()
        self.owner_by_id: dict[str, Instance] = {}
        """request_id -> the instance that holds the request now."""
        self._home_by_id: OrderedDict[str, Instance] = OrderedDict()
        """request_id -> the entry instance it went to (for its follow-up)."""

    def add(self, request: SimRequest, now_s: float) -> bool:
        """Queue a new request on an entry instance (its parent's, else round robin).

        Returns:
            False if it can never fit in the KV cache (it is then finished as `TOO_LARGE`).
        """
        del now_s
        parent = request.spec.after_id
        home = self._home_by_id.pop(parent, None) if parent is not None else None
        instance = home or self.entry[next(self._next_entry)]
        self._home_by_id[request.request_id] = instance
        if len(self._home_by_id) > _MAX_HOMES:
            self._home_by_id.popitem(last=False)
        if not instance.can_ever_fit(request) or (
            self.decode and not self.decode[0].can_ever_fit(request)
        ):
            request.finish_reason = FinishReason.TOO_LARGE
            return False
        instance.add(request)
        self.owner_by_id[request.request_id] = instance
        return True

    def abort(self, request: SimRequest) -> None:
        """Drop a request wherever it is (client cancellation)."""
        instance = self.owner_by_id.pop(request.request_id, None)
        if instance is not None:
            if instance.step is not None and _in_step(instance, request):
                # It is in the step in flight: let the step end, then drop it.
                request.finish_reason = FinishReason.ABORTED
                return
            instance.abort(request)
        request.finish_reason = FinishReason.ABORTED
        self._transfers = [t for t in self._transfers if t[2] is not request]
        heapq.heapify(self._transfers)

    def end_program(self, program_id: str, now_s: float) -> None:
        """Every request of `program_id` has ended (the runtime's signal to a pool).

        Nothing to do for a deployment without program-aware routing.
        """
        del program_id, now_s

    @property
    def has_work(self) -> bool:
        """Anything queued, running or in transfer."""
        return bool(self._transfers) or any(i.has_work for i in self.instances)

    def begin_steps(self, now_s: float) -> None:
        """Start a step on every idle instance that has work and is not waiting to wake."""
        for instance in self.instances:
            is_idle = instance.step is None and instance.has_work
            if is_idle and (instance.wake_s is None or instance.wake_s <= now_s):
                instance.begin_step(now_s)

    def next_event_s(self) -> float | None:
        """The earliest step end, wake-up or transfer arrival; None if nothing is pending."""
        times = [t for t in (_next_time(i) for i in self.instances) if t is not None]
        if self._transfers:
            times.append(self._transfers[0][0])
        return min(times) if times else None

    def advance(self, now_s: float) -> Progress:
        """Finish every step that ends by `now_s` and deliver due transfers (in time order)."""
        progress = Progress()
        while True:
            ending = [i for i in self.instances if i.step is not None and i.step.end_s <= now_s]
            due = self._transfers[0][0] if self._transfers else None
            if not ending and (due is None or due > now_s):
                return progress
            first = min(ending, key=_step_end) if ending else None
            if first is not None and (due is None or _step_end(first) <= due):
                self._finish(first, progress)
            else:
                _, _, request, target = heapq.heappop(self._transfers)
                target.add(request)
                self.owner_by_id[request.request_id] = target

    def _finish(self, instance: Instance, progress: Progress) -> None:
        assert instance.step is not None
        end_s = instance.step.end_s
        emitted, finished, handed = instance.finish_step()
        progress.emitted.extend(emitted)
        progress.finished.extend(finished)
        for request in finished:
            self.owner_by_id.pop(request.request_id, None)
        for request in handed:
            target = self.decode[next(self._next_decode)]
            arrive_s = end_s + self._transfer_s(request)
            heapq.heappush(self._transfers, (arrive_s, next(self._seq), request, target))
            self.owner_by_id.pop(request.request_id, None)


def _step_end(instance: Instance) -> float:
    assert instance.step is not None
    return instance.step.end_s


def _next_time(instance: Instance) -> float | None:
    if instance.step is not None:
        return instance.step.end_s
    return instance.wake_s if instance.has_work else None


def _in_step(instance: Instance, request: SimRequest) -> bool:
    step = instance.step
    assert step is not None
    return request in step.batch.decodes or any(r is request for r, _ in step.batch.chunks)
