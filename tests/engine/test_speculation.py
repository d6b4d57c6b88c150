"""SLO-adaptive speculation on the real vLLM CPU engine: n-gram drafts, tiny random Llama.

The planner picks a verify length per SLO tier from the acceptance it measures, and the
scheduler trims each request's drafts to it. Speculation must never change what greedy
decoding produces, only how many tokens a step yields.
"""

import json

import anyio
import pytest

from agentflow.engine.interface import GenerationRequest
from agentflow.engine.vllm import VLLMEngine, VLLMEngineConfig

pytestmark = [pytest.mark.anyio, pytest.mark.engine, pytest.mark.slow]

# Repeated text: the n-gram proposer finds matches in the prompt from the first decode on.
PROMPTS = {
    "r0": " ".join(["alpha beta gamma delta"] * 16),
    "r1": " ".join(["one two three"] * 20),
}
MAX_TOKENS = 24


def _config(model_dir, **overrides):
    return VLLMEngineConfig(
        model=model_dir,
        load_format="dummy",
        dtype="float32",  # bf16 rounding differs between a verify and a one-token decode
        kv_cache_mib=64,
        max_model_len=512,
        warmup=False,
        **overrides,
    )


def _request(rid, prompt, *, ttft_ms=5_000.0, tpot_ms=200.0):
    return GenerationRequest(
        request_id=rid,
        prompt=prompt,
        max_tokens=MAX_TOKENS,
        ttft_ms=ttft_ms,
        tpot_ms=tpot_ms,
        program_id=rid,
        stage="s",
        tier="",
        ignore_eos=True,
        use_chat_template=False,
    )


async def _serve(engine, requests):
    texts, lanes = {}, {}

    async def one(request):
        deltas = [delta async for delta in engine.stream(request)]
        texts[request.request_id] = "".join(d.text for d in deltas)
        lanes[request.request_id] = deltas[-1].lane
        assert sum(d.num_tokens for d in deltas) == MAX_TOKENS

    async with anyio.create_task_group() as group:
        for request in requests:
            group.start_soon(one, request)
    return texts, lanes


def _events(path, kind):
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == kind]


async def test_speculation_keeps_greedy_output_and_verifies_the_drafts_the_planner_allows(
    tiny_model_dir, tmp_path
):
    requests = [_request(rid, prompt) for rid, prompt in PROMPTS.items()]
    async with VLLMEngine(_config(tiny_model_dir)) as engine:
        plain, _ = await _serve(engine, requests)

    trace = tmp_path / "spec.jsonl"
    config = _config(tiny_model_dir, num_speculative_tokens=3, trace_path=trace)
    async with VLLMEngine(config) as engine:
        speculative, lanes = await _serve(engine, requests)

    assert speculative == plain
    assert set(lanes.values()) == {"admitted"}
    (start,) = _events(trace, "start")
    assert start["max_drafts"] == 3
    steps = _events(trace, "step")
    drafts = [s["num_spec_tokens"] for s in steps]
    assert sum(drafts) > 0  # drafts were verified...
    assert max(drafts) <= 3 * len(PROMPTS)  # ...never more than the proposer's per request
    # Fewer steps than tokens: verified drafts were accepted.
    assert sum(s["num_decode_reqs"] for s in steps) < len(PROMPTS) * (MAX_TOKENS - 1)
    # The planner's verify lengths per SLO tier: its own token plus at most the 3 drafts.
    verify = [e["spec_len_by_tier"] for e in _events(trace, "verify")]
    assert verify and all(1 <= n <= 4 for lengths in verify for n in lengths.values())
    # The planner plans with the acceptance it measured, not only its prior (the first event).
    alphas = [e["alpha"] for e in _events(trace, "acceptance")]
    assert alphas[0] == config.spec_acceptance_prior
    assert len(alphas) >= 2 and alphas[-1] != alphas[0]


async def test_a_best_effort_request_verifies_no_drafts(tiny_model_dir, tmp_path):
    trace = tmp_path / "be.jsonl"
    config = _config(tiny_model_dir, num_speculative_tokens=3, trace_path=trace)
    async with VLLMEngine(config) as engine:
        # A TTFT no prefill can meet: served best-effort from spare tokens.
        _, lanes = await _serve(engine, [_request("hopeless", PROMPTS["r0"], ttft_ms=0.01)])
    assert lanes == {"hopeless": "best_effort"}
    steps = _events(trace, "step")
    assert sum(s["num_decode_reqs"] for s in steps) == MAX_TOKENS - 1
    assert all(s["num_spec_tokens"] == 0 for s in steps)


async def test_stock_vllm_verifies_every_draft_it_is_given(tiny_model_dir, tmp_path):
    trace = tmp_path / "fcfs.jsonl"
    config = _config(tiny_model_dir, policy="fcfs", num_speculative_tokens=3, trace_path=trace)
    async with VLLMEngine(config) as engine:
        texts, _ = await _serve(engine, [_request("r0", PROMPTS["r0"])])
    assert len(texts["r0"]) > 0
    assert sum(s["num_spec_tokens"] for s in _events(trace, "step")) > 0


def test_bad_speculation_settings_name_the_field(tiny_model_dir):
    with pytest.raises(ValueError, match="num_speculative_tokens"):
        _config(tiny_model_dir, num_speculative_tokens=-1)
    with pytest.raises(ValueError, match="ngram_lookup"):
        _config(tiny_model_dir, num_speculative_tokens=2, ngram_lookup=(4, 2))
