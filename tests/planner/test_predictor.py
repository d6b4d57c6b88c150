import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentflow.errors import ConfigError
from agentflow.planner import (
    AffinePiece,
    StepSample,
    StepTimePredictor,
    chunk_context_tokens,
    evaluate,
    mape,
    r2_score,
)

TRUE = AffinePiece(
    constant_s=0.012,
    per_prefill_token_s=3e-4,
    per_decode_req_s=9e-4,
    per_context_token_s=2e-7,
    per_spec_token_s=2.5e-4,
    per_prefill_pair_s=3e-8,
)


def synthetic_samples(pieces: list[AffinePiece], n: int = 200, seed: int = 0) -> list[StepSample]:
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        p, d = int(rng.integers(0, 2048)), int(rng.integers(0, 64))
        q = chunk_context_tokens(int(rng.integers(0, 512)), p)
        c = d * int(rng.integers(0, 1024))
        s = int(rng.integers(0, 4)) * d
        t = max(piece.time_s(p, d, c, s, q) for piece in pieces)
        samples.append(StepSample(p, d, c, s, t, num_prefill_pairs=q))
    return samples


def test_fit_recovers_known_coefficients():
    fitted = StepTimePredictor.fit(synthetic_samples([TRUE])).pieces[0]
    for name in (
        "constant_s",
        "per_prefill_token_s",
        "per_decode_req_s",
        "per_context_token_s",
        "per_spec_token_s",
        "per_prefill_pair_s",
    ):
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE, name), rel=1e-6)


def test_a_decode_read_token_and_a_prefill_pair_are_priced_apart():
    # On the CPU engine a decode's KV read costs ~7x a prefill pair; one shared price missed
    # first prefill chunks by up to 25 %.
    predictor = StepTimePredictor([TRUE])
    pairs = chunk_context_tokens(0, 512)
    assert predictor.isolated_prefill_s(512) == pytest.approx(
        TRUE.constant_s + 512 * TRUE.per_prefill_token_s + pairs * 3e-8
    )
    assert predictor.step_time_s(0, 1, 1000) == pytest.approx(
        TRUE.constant_s + TRUE.per_decode_req_s + 1000 * TRUE.per_context_token_s
    )


def test_samples_without_pairs_leave_the_pair_price_unset():
    lumped = [
        StepSample(x.num_prefill_tokens, x.num_decode_reqs, x.num_context_tokens, 0, 0.02 + i / 1e4)
        for i, x in enumerate(synthetic_samples([TRUE]))
    ]
    assert StepTimePredictor.fit(lumped).pieces[0].per_prefill_pair_s is None


def test_a_profile_saved_before_pair_prices_prices_pairs_like_context():
    old = {k: v for k, v in vars_of(TRUE).items() if k != "per_prefill_pair_s"}
    text = json.dumps({"format": "agentflow.step_time/1", "pieces": [old]})
    piece = StepTimePredictor.from_json(text).pieces[0]
    assert piece.per_prefill_pair_s is None
    assert piece.pair_s == TRUE.per_context_token_s


def vars_of(piece: AffinePiece) -> dict[str, float | None]:
    return {name: getattr(piece, name) for name in piece.__dataclass_fields__}


def test_fit_with_two_pieces_recovers_a_roofline_knee():
    memory_bound = AffinePiece(0.030, 0.0, 2e-4, 0.0, 0.0)
    compute_bound = AffinePiece(0.002, 1e-4, 5e-4, 1e-8, 1e-4)
    samples = synthetic_samples([memory_bound, compute_bound], n=400, seed=1)
    predictor = StepTimePredictor.fit(samples, num_pieces=2)
    assert len(predictor.pieces) == 2
    assert evaluate(predictor, samples)["mape"] < 0.02


def test_fit_needs_enough_samples():
    with pytest.raises(ConfigError, match="samples"):
        StepTimePredictor.fit(synthetic_samples([TRUE], n=3))


@given(
    time_s=st.floats(0.0, 3.0),
    num_decode_reqs=st.integers(0, 64),
    context=st.integers(0, 50_000),
    offset=st.integers(0, 4000),
)
def test_max_prefill_tokens_is_the_inverse_of_step_time(time_s, num_decode_reqs, context, offset):
    predictor = StepTimePredictor([TRUE])  # prices pairs apart from decode reads
    n = predictor.max_prefill_tokens(time_s, num_decode_reqs, context, prefill_offset=offset)

    def step(k: int) -> float:
        pairs = chunk_context_tokens(offset, k)
        return predictor.step_time_s(k, num_decode_reqs, context, num_prefill_pairs=pairs)

    if n > 0:
        assert step(n) <= time_s
    assert step(n + 1) > time_s


def test_max_prefill_tokens_is_zero_when_decodes_alone_overrun_the_budget():
    predictor = StepTimePredictor.default_cpu()
    assert predictor.max_prefill_tokens(0.010, num_decode_reqs=64) == 0


@pytest.mark.parametrize(
    ("num_tokens", "measured_ms"), [(64, 31), (256, 84), (1024, 500), (2048, 967), (4000, 2608)]
)
def test_default_cpu_profile_matches_measured_prefill(num_tokens, measured_ms):
    predicted_ms = StepTimePredictor.default_cpu().isolated_prefill_s(num_tokens) * 1e3
    assert predicted_ms == pytest.approx(measured_ms, rel=0.15)


@pytest.mark.parametrize(("batch", "measured_ms"), [(1, 15), (8, 19), (32, 37), (64, 65)])
def test_default_cpu_profile_matches_measured_decode(batch, measured_ms):
    predicted_ms = StepTimePredictor.default_cpu().step_time_s(0, batch, 128 * batch) * 1e3
    assert predicted_ms == pytest.approx(measured_ms, rel=0.15)


def test_prefill_cost_rises_superlinearly_with_prompt_length():
    predictor = StepTimePredictor.default_cpu()
    per_token = [predictor.prefill_work_s(0, n) / n for n in (256, 1024, 4000)]
    assert per_token == sorted(per_token)
    # Chunking does not change the total work of a prompt.
    chunked = predictor.prefill_work_s(0, 1000) + predictor.prefill_work_s(1000, 3000)
    assert chunked == pytest.approx(predictor.prefill_work_s(0, 3000))


def _shapes(seed: int, n: int) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    return [
        (int(rng.integers(0, 512)), int(rng.integers(0, 64)), int(rng.integers(0, 8192)))
        for _ in range(n)
    ]


def test_observe_learns_a_per_step_overhead_the_profile_lacks():
    profile = StepTimePredictor.default_cpu()
    truth = StepTimePredictor.default_cpu()
    for prefill, decodes, context in _shapes(0, 300):
        measured = truth.step_time_s(prefill, decodes, context) + 0.020
        profile.observe(StepSample(prefill, decodes, context, 0, measured))
    assert profile.bias_s == pytest.approx(0.020, rel=0.1)
    assert profile.scale == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("slowdown", [0.25, 3.0, 10.0])
def test_observe_learns_an_engine_uniformly_slower_or_faster_than_its_profile(slowdown):
    # A profile fitted on another machine (or under other load): every step takes `slowdown`
    # times what it predicts. Within a few hundred steps the predictions follow the engine.
    profile = StepTimePredictor.default_cpu()
    truth = StepTimePredictor.default_cpu()
    for prefill, decodes, context in _shapes(0, 400):
        measured = slowdown * truth.step_time_s(prefill, decodes, context)
        profile.observe(StepSample(prefill, decodes, context, 0, measured))
    assert abs(math.log(profile.scale / slowdown)) < 0.3  # the rest is in the bias
    for prefill, decodes, context in _shapes(1, 50):
        measured = slowdown * truth.step_time_s(prefill, decodes, context)
        assert profile.step_time_s(prefill, decodes, context) == pytest.approx(measured, rel=0.1)
    # The planner's inverse follows too: a step budget buys fewer tokens on a slower engine.
    assert profile.max_prefill_tokens(0.2, 0) == pytest.approx(
        truth.max_prefill_tokens(0.2 / slowdown, 0), rel=0.15
    )


@pytest.mark.parametrize("starting_scale", [0.1, 1.0, 10.0])
def test_a_dozen_steps_are_followed_wherever_the_online_state_starts(starting_scale):
    # A profile saved with another machine's online scale: the first refit corrects most of
    # it, and the steps after it are judged against the corrected fit, not clipped back
    # towards the old one (they were: a start ten times off ended 16x too fast).
    truth = StepTimePredictor.default_cpu()
    profile = StepTimePredictor(truth.fitted_pieces, scale=starting_scale)
    pairs = chunk_context_tokens(0, 70)
    samples = [StepSample(70, 0, 0, 0, 2.0 * truth.isolated_prefill_s(70), pairs)]
    samples += [StepSample(0, 1, 70 + k, 0, 2.0 * truth.lone_decode_s(70 + k)) for k in range(11)]
    for sample in samples:
        profile.observe(sample)
    assert profile.lone_decode_s(80) == pytest.approx(2.0 * truth.lone_decode_s(80), rel=0.1)


def test_an_accurate_profile_keeps_its_scale_through_noisy_steps():
    predictor = StepTimePredictor.default_cpu()
    rng = np.random.default_rng(2)
    for prefill, decodes, context in _shapes(3, 2000):
        noise = float(np.exp(rng.normal(0.0, 0.15)))  # about 15 % step-to-step jitter
        measured = noise * StepTimePredictor.default_cpu().step_time_s(prefill, decodes, context)
        predictor.observe(StepSample(prefill, decodes, context, 0, measured))
    assert predictor.scale == pytest.approx(1.0, abs=0.08)


def test_one_wild_step_moves_the_scale_by_little():
    predictor = StepTimePredictor.default_cpu()
    predictor.observe(StepSample(100, 4, 0, 0, 100.0))  # a 100 s step: a stall, not the model
    assert predictor.step_time_s(100, 4) < 1.15 * StepTimePredictor.default_cpu().step_time_s(
        100, 4
    )


def test_json_round_trip_keeps_model_and_online_state(tmp_path):
    predictor = StepTimePredictor.default_cpu()
    for num_prefill in (10, 100, 200, 400):
        predictor.observe(
            StepSample(num_prefill, 1, 0, 0, 2 * predictor.step_time_s(num_prefill, 1))
        )
    path = tmp_path / "profile.json"
    predictor.save(path)
    loaded = StepTimePredictor.load(path)
    assert loaded.pieces == predictor.pieces
    assert loaded.fitted_pieces == StepTimePredictor.default_cpu().pieces
    assert loaded.scale == predictor.scale > 1.0
    assert loaded.bias_s == predictor.bias_s
    assert json.loads(path.read_text())["format"] == "agentflow.step_time/1"


def test_from_json_rejects_other_documents():
    with pytest.raises(ConfigError, match="format"):
        StepTimePredictor.from_json('{"format": "other"}')
    with pytest.raises(ConfigError, match="cannot parse"):
        StepTimePredictor.from_json("not json")


def test_negative_slopes_are_rejected():
    with pytest.raises(ConfigError, match="per_decode_req_s"):
        StepTimePredictor([AffinePiece(0.01, 1e-4, -1e-4, 0.0, 0.0)])


def test_accuracy_helpers():
    assert r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    assert mape([1.1, 1.8], [1.0, 2.0]) == pytest.approx(0.1)


# A two-piece (roofline knee) model where each piece dominates somewhere: the compute-bound
# piece for long prompts and big batches, the memory-bound one for short work.
KNEE = [
    AffinePiece(0.010, 1e-4, 2e-4, 1e-7, 1e-4, per_prefill_pair_s=1e-8),
    AffinePiece(0.002, 4e-4, 9e-4, 4e-7, 3e-4, per_prefill_pair_s=4e-8),
]


@pytest.mark.parametrize("bias_s", [0.0, 0.003])
def test_the_planners_vectorized_costs_are_the_scalar_ones_on_a_two_piece_model(bias_s):
    predictor = StepTimePredictor(KNEE, bias_s=bias_s)
    computed = np.array([0.0, 0.0, 100.0, 500.0, 2000.0, 3000.0])
    prompt = np.array([0.0, 16.0, 400.0, 500.0, 4000.0, 3001.0])
    work = predictor.prefill_work_array(computed, prompt)
    expected = [
        predictor.prefill_work_s(int(c), int(p)) for c, p in zip(computed, prompt, strict=True)
    ]
    np.testing.assert_allclose(work, expected, rtol=1e-12)

    context = np.array([1.0, 64.0, 4096.0, 100_000.0])
    spec_len = np.array([1.0, 1.0, 3.0, 5.0])
    cost = predictor.decode_cost_array(context, spec_len)
    # One decode's marginal time: a step with it minus the empty step, on the costlier piece.
    expected = [
        max(p.time_s(0, 1, c, s - 1) - p.constant_s for p in predictor.pieces)
        for c, s in zip(context, spec_len, strict=True)
    ]
    np.testing.assert_allclose(cost, expected, rtol=1e-12)


@pytest.mark.parametrize("bias_s", [-0.05, -0.001, 0.0, 0.004])
def test_the_empty_step_is_the_model_of_a_step_with_nothing_in_it(bias_s):
    predictor = StepTimePredictor(KNEE, bias_s=bias_s)
    assert predictor.base_s == predictor.step_time_s(0, 0)
    assert predictor.base_s >= 0.0  # a negative correction never makes a step take no time
