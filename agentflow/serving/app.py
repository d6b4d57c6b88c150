"""`agentflow serve`'s HTTP app: OpenAI-compatible completions, program runs, Prometheus.

Routes:
    GET  /health                  200 once the engine serves
    GET  /v1/models               the served model, OpenAI's list shape
    POST /v1/completions          OpenAI completions (+ agentflow SLO fields)
    POST /v1/chat/completions     OpenAI chat completions (+ agentflow SLO fields)
    GET  /v1/agents               the program's agents: inputs and stage budgets
    POST /v1/agents/{name}/runs   run one program instance to a terminal state (or stream it)
    GET  /metrics                 Prometheus text format
"""

from __future__ import annotations

import hmac
import inspect
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from agentflow.errors import EngineError
from agentflow.metrics.prometheus import CONTENT_TYPE_LATEST, ServingMetrics
from agentflow.program.agent import Agent
from agentflow.runtime.events import ProgramFinished
from agentflow.runtime.runtime import Runtime
from agentflow.serving.completions import CompletionService, OpenAIRequest
from agentflow.serving.errors import BadRequest
from agentflow.serving.schema import ChatCompletionRequest, CompletionRequest, ProgramRunRequest
from tools.disconnect import CancelOnDisconnect

__all__ = ["create_app"]

_Body = TypeVar("_Body", bound=BaseModel)


def create_app(
    service: CompletionService,
    runtime: Runtime,
    agents: Sequence[Agent] = (),
    *,
    api_key: str | None = None,
) -> ASGIApp:
    """The ASGI app over a started engine (`service.engine`, which `runtime` also drives).

    A client that hangs up cancels its request, which aborts it in the engine. With an
    `api_key`, every `/v1` route requires `Authorization: Bearer <api_key>` (as vLLM's
    `--api-key`); `/health` and `/metrics` stay open for probes and scrapers.
    """
    by_name = {agent.name: agent for agent in agents}
    metrics = service.metrics

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": service.model_name})

    async def models(request: Request) -> Response:
        model = {"id": service.model_name, "object": "model", "owned_by": "agentflow"}
        return JSONResponse({"object": "list", "data": [model]})

    async def completions(request: Request) -> Response:
        return await _complete(service, request, CompletionRequest)

    async def chat_completions(request: Request) -> Response:
        return await _complete(service, request, ChatCompletionRequest)

    async def list_agents(request: Request) -> Response:
        return JSONResponse({"agents": [_describe(agent) for agent in agents]})

    async def run_agent(request: Request) -> Response:
        agent = by_name.get(request.path_params["name"])
        if agent is None:
            known = ", ".join(sorted(by_name)) or "none"
            name = request.path_params["name"]
            return _error(BadRequest(f"no agent named '{name}'; agents: {known}", status=404))
        try:
            body = await _parse(request, ProgramRunRequest)
            _check_inputs(agent, body.inputs)
        except BadRequest as exc:
            return _error(exc)
        if body.stream:
            events = _program_events(runtime, agent, body.inputs, metrics)
            return StreamingResponse(events, media_type="text/event-stream")
        result = await runtime.run_one(agent, body.inputs)
        metrics.observe_program(result)
        reply = {
            "result": result.to_json(),
            "stages": [record.to_json() for record in result.stages],
            "tools": [call.to_json() for call in result.tools],
        }
        # An agent may return any Python value: what JSON cannot hold is sent as its str().
        return Response(json.dumps(reply, default=str), media_type="application/json")

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/agents", list_agents, methods=["GET"]),
        Route("/v1/agents/{name}/runs", run_agent, methods=["POST"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
    handlers = {HTTPException: _http_error, Exception: _server_error}
    app = CancelOnDisconnect(Starlette(routes=routes, exception_handlers=handlers))
    return app if api_key is None else _RequireKey(app, api_key)


class _RequireKey:
    """Answers 401 to a `/v1` request without the bearer key; passes everything else on."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the key on `/v1` HTTP requests."""
        if scope["type"] == "http" and scope["path"].startswith("/v1"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                error = BadRequest("missing or wrong API key", code="invalid_api_key", status=401)
                await _error(error, kind="authentication_error")(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _program_events(
    runtime: Runtime, agent: Agent, inputs: dict[str, Any], metrics: ServingMetrics
) -> AsyncIterator[str]:
    """A program run as server-sent events: `event: <kind>` and the event's JSON."""
    async with runtime.stream(agent, inputs) as events:
        async for event in events:
            if isinstance(event, ProgramFinished):
                metrics.observe_program(event.result)
            yield f"event: {event.kind}\ndata: {json.dumps(event.to_json(), default=str)}\n\n"


async def _complete(
    service: CompletionService, request: Request, schema: type[OpenAIRequest]
) -> Response:
    try:
        body = await _parse(request, schema)
        prepared = service.prepare(body)
    except BadRequest as exc:
        endpoint = "chat" if schema is ChatCompletionRequest else "completion"
        service.metrics.observe_rejection(endpoint, "default")
        return _error(exc)
    if body.stream:
        return StreamingResponse(service.stream_events(prepared), media_type="text/event-stream")
    try:
        return JSONResponse(await service.respond(prepared))
    except EngineError as exc:
        return _error(BadRequest(str(exc), code="engine_error", status=500), kind="engine_error")


async def _parse(request: Request, schema: type[_Body]) -> _Body:
    """The body as `schema`, or a BadRequest naming the first wrong field."""
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        raise BadRequest(f"{where}: {message}" if where else message, param=where) from exc


def _check_inputs(agent: Agent, inputs: dict[str, Any]) -> None:
    unknown = sorted(set(inputs) - set(agent.inputs))
    if unknown:
        raise BadRequest(
            f"inputs: unknown inputs {unknown}; '{agent.name}' takes {list(agent.inputs)}",
            param="inputs",
        )
    params = list(inspect.signature(agent.fn).parameters.values())[1:]
    missing = [p.name for p in params if p.default is p.empty and p.name not in inputs]
    if missing:
        raise BadRequest(f"inputs: missing {missing} for agent '{agent.name}'", param="inputs")


def _describe(agent: Agent) -> dict[str, Any]:
    return {
        "name": agent.name,
        "inputs": list(agent.inputs),
        "deadline_ms": agent.deadline_ms,
        "stages": [
            {
                "name": stage.spec.name,
                "ttft": stage.spec.slo.describe_ttft(),
                "tpot": stage.spec.slo.describe_tpot(),
                "tpot_ms": stage.spec.slo.tpot_ms,  # None when given as a slowdown
                "max_tokens": stage.spec.max_tokens,
                "tier": stage.spec.tier,
            }
            for stage in agent.stages
        ],
    }


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and wrong methods, in OpenAI's error shape."""
    assert isinstance(exc, HTTPException)
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return _error(BadRequest(message, status=exc.status_code))


async def _server_error(request: Request, exc: Exception) -> Response:
    """A bug or an engine that stopped: a 500 in OpenAI's error shape, not a bare page."""
    message = f"{type(exc).__name__}: {exc}"
    return _error(BadRequest(message, code="internal_error", status=500), kind="server_error")


def _error(exc: BadRequest, kind: str = "invalid_request_error") -> Response:
    body = {"error": {"message": str(exc), "type": kind, "param": exc.param, "code": exc.code}}
    return JSONResponse(body, status_code=exc.status)
