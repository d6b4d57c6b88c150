"""Integration: `agentflow serve`'s app over the real vLLM CPU engine, on a real loopback socket.

One engine (tiny random Llama, our scheduler) and one server serve every test here. Clients
are httpx and the official OpenAI SDK, as users would point them at the server.
"""

import json

import httpx
import openai
import pytest

import agentflow as af
from agentflow.engine.vllm import VLLMEngine, VLLMEngineConfig
from agentflow.metrics.prometheus import ServingMetrics
from agentflow.runtime import Runtime
from agentflow.serving import CompletionService, ServeDefaults, create_app
from tools.serving import running_app

pytestmark = [pytest.mark.anyio, pytest.mark.engine, pytest.mark.slow]

MODEL = "tiny-llama"
MAX_MODEL_LEN = 512
API_KEY = "sk-test-key"


@af.stage(ttft_ms=10_000, tpot_ms=500, max_tokens=4, use_chat_template=False, tier="loose")
def draft(topic: str) -> str:
    return f"Notes on {topic}:"


@af.stage(ttft_ms=10_000, tpot_ms=500, max_tokens=3, use_chat_template=False, tier="loose")
def title(topic: str, draft: str) -> str:
    return f"{draft} Title for {topic}:"


@af.agent
async def writer(ctx: af.Context, topic: str) -> str:
    notes = await ctx.run(draft, topic)
    return await ctx.run(title, topic, notes)


@pytest.fixture(scope="module")
async def server(tiny_model_dir):
    config = VLLMEngineConfig(
        model=tiny_model_dir, load_format="dummy", kv_cache_mib=128, max_model_len=MAX_MODEL_LEN
    )
    async with VLLMEngine(config) as engine:
        service = CompletionService(
            engine,
            model_name=MODEL,
            defaults=ServeDefaults(ttft="20x", tpot=500, max_tokens=8),
            metrics=ServingMetrics(),
            max_model_len=MAX_MODEL_LEN,
        )
        runtime = Runtime(engine)
        app = create_app(service, runtime, [writer])
        keyed = create_app(service, runtime, [writer], api_key=API_KEY)
        async with running_app(app) as url, running_app(keyed) as keyed_url:
            yield url, keyed_url, engine


@pytest.fixture
def url(server):
    return server[0]


@pytest.fixture
async def http(url):
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        yield client


@pytest.fixture
async def sdk(url):
    # Closed on this test's event loop: a client left to the garbage collector closes its
    # connections on whichever loop is running then (or a closed one).
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
        yield client


async def test_the_served_model_is_listed_and_the_server_is_healthy(http):
    assert (await http.get("/health")).json()["status"] == "ok"
    listing = (await http.get("/v1/models")).json()
    assert [model["id"] for model in listing["data"]] == [MODEL]


async def test_a_completion_carries_usage_and_the_lane_it_was_served_in(http):
    reply = await http.post(
        "/v1/completions",
        json={
            "model": MODEL,
            "prompt": "The weather today",
            "max_tokens": 5,
            "ttft_ms": 5000,
            "tpot_ms": 400,
            "stage": "probe",
            "tier": "tight",
        },
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["object"] == "text_completion"
    (choice,) = body["choices"]
    assert choice["finish_reason"] in {"length", "stop"}
    assert isinstance(choice["text"], str)
    assert 1 <= body["usage"]["completion_tokens"] <= 5
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    report = body["agentflow"]
    assert report["lane"] == "admitted"
    assert (report["stage"], report["tier"]) == ("probe", "tight")
    assert (report["ttft_budget_ms"], report["tpot_budget_ms"]) == (5000, 400)
    assert report["ttft_ms"] > 0 and report["slo_met"] is True


async def test_the_openai_sdk_chats_with_the_slo_in_extra_body(sdk):
    reply = await sdk.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Name a colour."},
        ],
        max_tokens=4,
        extra_body={"ttft_ms": 5000, "tpot_ms": 400},
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in {"length", "stop"}
    assert 1 <= reply.usage.completion_tokens <= 4
    assert reply.model_extra["agentflow"]["lane"] == "admitted"


async def test_the_openai_sdk_streams_a_chat_and_gets_the_verdict_and_usage_last(sdk):
    stream = await sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count to three."}],
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ttft_ms": 5000, "tpot_ms": 400},
    )
    chunks = [chunk async for chunk in stream]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in {"length", "stop"} and all(f is None for f in finishes[:-1])
    last = chunks[-1]
    assert last.choices == []
    assert last.model_extra["agentflow"]["lane"] == "admitted"
    assert 1 <= last.usage.completion_tokens <= 6


async def test_a_ttft_below_the_prompts_own_prefill_is_served_best_effort_and_says_so(http):
    reply = await http.post(
        "/v1/completions",
        json={"prompt": "word " * 60, "max_tokens": 3, "ttft_ms": 0.01, "tpot_ms": 400},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["usage"]["completion_tokens"] >= 1  # still served, in the leftover capacity
    assert body["agentflow"]["lane"] == "best_effort"
    assert body["agentflow"]["slo_met"] is False


async def test_a_tpot_slowdown_is_resolved_against_the_engines_lone_decode_step(http, server):
    engine = server[2]
    reply = await http.post(
        "/v1/completions", json={"prompt": "word " * 20, "max_tokens": 3, "tpot": "30x"}
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    # Its longest context: the prompt plus every token it may generate.
    context = body["usage"]["prompt_tokens"] + 3
    expected_ms = 30 * engine.lone_decode_ms(context)
    assert body["agentflow"]["tpot_budget_ms"] == pytest.approx(expected_ms)
    assert expected_ms != pytest.approx(500)  # not the server's default TPOT


@pytest.mark.parametrize(
    ("body", "status", "param", "says"),
    [
        ({"prompt": "x", "n": 2}, 400, "n", "only n=1"),
        ({"prompt": "x", "tpot_ms": -5}, 400, "tpot_ms", "greater than 0"),
        ({"prompt": "x", "tpot_ms": "NaN"}, 400, "tpot_ms", "finite"),
        ({"prompt": "x", "ttft": "fast"}, 400, None, "slowdown like '3x'"),
        ({"prompt": "x", "ttft": "3x", "ttft_ms": 100}, 400, None, "not both"),
        ({"prompt": "x", "tpot": "fast"}, 400, None, "tpot must be milliseconds"),
        ({"prompt": "x", "tpot": "2x", "tpot_ms": 100}, 400, None, "not both"),
        ({"prompt": "x", "model": "gpt-4o"}, 404, "model", "serves 'tiny-llama'"),
        ({"prompt": "x", "max_tokens": MAX_MODEL_LEN}, 400, "max_tokens", "context of 512"),
        ({"prompt": "word " * 200, "max_tokens": 1}, 400, "prompt", "context of 512"),
        ({"prompt": ""}, 400, "prompt", "at least 1 character"),
        ({"max_tokens": 3}, 400, "prompt", "required"),
        ({"prompt": "x", "logprobs": 5}, 400, "logprobs", "not supported"),
        ({"prompt": "x", "echo": True}, 400, "echo", "not supported"),
        ({"prompt": "x", "best_of": 3}, 400, "best_of", "best_of=1"),
        ({"prompt": "x", "presence_penalty": 3}, 400, "presence_penalty", "less than or equal"),
    ],
)
async def test_a_bad_completion_request_is_refused_naming_the_field(
    http, body, status, param, says
):
    reply = await http.post("/v1/completions", json=body)
    assert reply.status_code == status
    error = reply.json()["error"]
    assert error["param"] == param
    assert says in error["message"]


async def test_a_body_that_is_not_json_or_a_non_text_chat_part_is_refused(http):
    reply = await http.post("/v1/chat/completions", content=b"{not json")
    assert reply.status_code == 400
    assert "not JSON" in reply.json()["error"]["message"]
    image = {"type": "image_url", "image_url": {"url": "http://x/y.png"}}
    reply = await http.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": [image]}]}
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "messages"


async def test_unknown_routes_and_methods_answer_in_openai_error_shape(http):
    missing = await http.post("/v1/embeddings", json={"input": "x"})
    assert missing.status_code == 404
    assert "/v1/embeddings" in missing.json()["error"]["message"]
    wrong_method = await http.get("/v1/completions")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["type"] == "invalid_request_error"


async def test_a_program_run_over_http_reports_each_stage(http):
    agents = (await http.get("/v1/agents")).json()["agents"]
    assert [(a["name"], a["inputs"]) for a in agents] == [("writer", ["topic"])]
    assert [s["name"] for s in agents[0]["stages"]] == ["draft", "title"]
    reply = await http.post("/v1/agents/writer/runs", json={"inputs": {"topic": "rivers"}})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["result"]["status"] == "finished"
    assert [(s["stage"], s["status"]) for s in body["stages"]] == [
        ("draft", "finished"),
        ("title", "finished"),
    ]


async def test_a_streamed_program_run_sends_each_stage_and_its_tokens_as_events(http):
    events = []
    request = {"inputs": {"topic": "lakes"}, "stream": True}
    async with http.stream("POST", "/v1/agents/writer/runs", json=request) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        kind = None
        async for line in reply.aiter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "program_started" and kinds[-1] == "program_finished"
    started = [data["stage"] for kind, data in events if kind == "stage_started"]
    finished = [(d["stage"], d["status"]) for kind, d in events if kind == "stage_finished"]
    assert started == ["draft", "title"]
    assert finished == [("draft", "finished"), ("title", "finished")]
    draft_tokens = sum(
        d["num_tokens"] for k, d in events if k == "stage_delta" and d["stage"] == "draft"
    )
    assert draft_tokens == next(d["output_tokens"] for k, d in events if k == "stage_finished")
    assert events[-1][1]["status"] == "finished"


async def test_a_program_run_with_wrong_inputs_or_agent_is_refused(http):
    reply = await http.post("/v1/agents/writer/runs", json={"inputs": {"subject": "x"}})
    assert reply.status_code == 400
    assert "unknown inputs ['subject']" in reply.json()["error"]["message"]
    reply = await http.post("/v1/agents/writer/runs", json={"inputs": {}})
    assert reply.status_code == 400
    assert "missing ['topic']" in reply.json()["error"]["message"]
    reply = await http.post("/v1/agents/reader/runs", json={"inputs": {}})
    assert reply.status_code == 404
    assert "no agent named 'reader'; agents: writer" in reply.json()["error"]["message"]


async def test_a_client_that_hangs_up_mid_stream_leaves_nothing_in_flight(http):
    request = {"prompt": "Tell a long story", "max_tokens": 400, "stream": True}
    before = _samples(await http.get("/metrics"))
    async with http.stream("POST", "/v1/completions", json=request) as reply:
        async for _ in reply.aiter_lines():
            break  # hang up after the first event
    for _ in range(100):
        after = _samples(await http.get("/metrics"))
        if after.get("agentflow_requests_in_flight") == 0:
            break
    assert after["agentflow_requests_in_flight"] == 0
    ended = sum(v for k, v in after.items() if k.startswith("agentflow_requests_total"))
    ended_before = sum(v for k, v in before.items() if k.startswith("agentflow_requests_total"))
    assert ended == ended_before + 1  # it reached a terminal state and was counted


async def test_metrics_count_requests_by_lane_and_status_and_time_them(http):
    await http.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 2, "stage": "metered"})
    await http.post("/v1/completions", json={"prompt": "Hi", "n": 3})
    reply = await http.get("/metrics")
    assert reply.headers["content-type"].startswith("text/plain")
    samples = _samples(reply)
    finished = (
        'agentflow_requests_total{lane="admitted",stage="metered",status="finished",tier="default"}'
    )
    assert samples[finished] == 1
    rejected = (
        'agentflow_requests_total{lane="none",stage="completion",status="rejected",tier="default"}'
    )
    assert samples[rejected] >= 1
    assert samples['agentflow_ttft_seconds_count{stage="metered",tier="default"}'] == 1
    assert samples['agentflow_output_tokens_total{stage="metered",tier="default"}'] == 2
    assert samples['agentflow_programs_total{agent="writer",status="finished"}'] >= 1


def _samples(reply: httpx.Response) -> dict[str, float]:
    out = {}
    for line in reply.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def test_with_an_api_key_v1_routes_need_the_bearer_key_and_probes_stay_open(server):
    keyed_url = server[1]
    async with httpx.AsyncClient(base_url=keyed_url, timeout=60) as client:
        denied = await client.get("/v1/models")
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "invalid_api_key"
        wrong = await client.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
    async with openai.AsyncOpenAI(
        base_url=f"{keyed_url}/v1", api_key=API_KEY, max_retries=0
    ) as sdk:
        reply = await sdk.completions.create(
            model=MODEL, prompt="Hello", max_tokens=2, presence_penalty=0.5, frequency_penalty=0.5
        )
    assert reply.usage.completion_tokens >= 1
