"""The pool on a real local Ray cluster, with fake engines that have seats (see fakes.py)."""

import time

import anyio
import psutil
import pytest
import ray

import agentflow as af
from agentflow.cluster import Pool, PoolConfig, SimSpec
from agentflow.engine.interface import Engine, GenerationRequest
from agentflow.engine.sim.profiles import get_profile
from agentflow.errors import RequestFailed
from agentflow.metrics.attainment import judge_slo
from agentflow.planner import StepTimePredictor
from agentflow.runtime import ProgramStatus, Runtime
from tests.cluster.fakes import seated_spec

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

JITTER_MS = 50.0


@af.stage(ttft_ms=500, tpot_ms=100, max_tokens=4)
def plan_step(task: str) -> str:
    return f"Plan how to do: {task}"


@af.stage(ttft_ms=500, tpot_ms=100, max_tokens=4)
def act_step(task: str, plan_step: str) -> str:
    return f"Task: {task} Plan: {plan_step} Act:"


@af.agent
async def planner_agent(ctx: af.Context, task: str) -> dict:
    plan = await ctx.run(plan_step, task)
    return {"plan": plan, "act": await ctx.run(act_step, task, plan)}


@af.stage(ttft_ms=500, tpot_ms=100, max_tokens=4)
def explode(task: str) -> str:
    return task


@af.agent
async def exploding_agent(ctx: af.Context, task: str) -> str:
    return await ctx.run(explode, task)


@pytest.fixture(scope="module")
async def pool(ray_cluster):
    pool = Pool(seated_spec(num_seats=3, token_delay_s=0.02), PoolConfig(num_replicas=2))
    await pool.start()
    yield pool
    await pool.shutdown()


def _request(request_id, *, max_tokens=10, ttft_ms=500.0, tpot_ms=100.0, program_id=None):
    return GenerationRequest(
        request_id=request_id,
        prompt=f"prompt of {request_id}",
        max_tokens=max_tokens,
        ttft_ms=ttft_ms,
        tpot_ms=tpot_ms,
        program_id=program_id or request_id,
        stage="s",
        tier="t",
    )


class Outcome:
    def __init__(self, request):
        self.request = request
        self.token_times_ms = []
        self.lanes = set()
        self.texts = []
        self.finished = False
        self.error = None

    @property
    def pids(self):
        return {text.strip("<>").split(":")[0] for text in self.texts}

    def slo_met(self):
        verdict = judge_slo(
            self.request.ttft_ms,
            self.request.tpot_ms,
            self.token_times_ms,
            admitted=self.lanes == {"admitted"},
        )
        return self.finished and verdict.met


async def _consume(engine, request, outcomes, *, max_deltas=None):
    outcome = outcomes[request.request_id] = Outcome(request)
    started = time.monotonic()
    try:
        async for delta in engine.stream(request):
            outcome.token_times_ms += [(time.monotonic() - started) * 1e3] * delta.num_tokens
            outcome.lanes.add(delta.lane)
            outcome.texts.append(delta.text)
            outcome.finished = delta.finished
            if max_deltas is not None and len(outcome.texts) >= max_deltas:
                break
    except RequestFailed as exc:
        outcome.error = str(exc)


async def _run_all(engine, requests, **kwargs):
    outcomes = {}
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for request in requests:
                group.start_soon(lambda r=request: _consume(engine, r, outcomes, **kwargs))
    return outcomes


async def test_pool_is_an_engine_and_runs_programs_with_stages_kept_on_one_replica(pool):
    assert isinstance(pool, Engine)
    before = pool.stats().router.num_affinity
    results = await Runtime(pool).run_many(
        planner_agent, [{"task": f"t{i}"} for i in range(4)], concurrency=4
    )

    assert [r.status for r in results] == [ProgramStatus.FINISHED] * 4
    pids_by_program = [{t.split(":")[0] for t in r.output["act"].split(">") if t} for r in results]
    assert all(len(pids) == 1 for pids in pids_by_program), "a program stays on its replica"
    assert len(set().union(*pids_by_program)) == 2, "the programs are spread over both"
    assert all(not s.best_effort and s.slo_met for r in results for s in r.stages)
    assert pool.stats().router.num_affinity - before == 4  # every second stage by affinity
    # The runtime said the programs ended: no replica holds a seat for their return.
    assert [m.num_active_programs(time.monotonic()) for m in pool.router.mirrors] == [0, 0]
    assert all(pool.router.preferred_replica(r.program_id) is None for r in results)


async def test_an_engine_failure_reaches_the_caller_and_the_pool_goes_on(pool):
    failed = await Runtime(pool).run_one(exploding_agent, {"task": "boom"})
    fine = await Runtime(pool).run_one(planner_agent, {"task": "after"})

    assert failed.status == ProgramStatus.FAILED and "injected failure" in failed.error
    assert failed.stages[0].status == "failed"
    assert fine.status == ProgramStatus.FINISHED


async def test_a_burst_keeps_admitted_requests_on_slo_and_serves_the_rest_best_effort(pool):
    # A TTFT budget of several waves: a request promoted from the central lane when a seat
    # frees has most of it left, so a stall of a loaded 2-core box (Ray hops of a few hundred
    # ms) cannot make it late. At 500 ms, the last promoted had ~150 ms to spare.
    requests = [_request(f"burst{i}", ttft_ms=2000.0) for i in range(24)]
    outcomes = await _run_all(pool, requests)

    assert len(outcomes) == 24 and all(o.finished and o.error is None for o in outcomes.values())
    admitted = [o for o in outcomes.values() if o.lanes == {"admitted"}]
    best_effort = [o for o in outcomes.values() if "best_effort" in o.lanes]
    assert len(admitted) >= 6 and best_effort, "6 seats: the rest of the burst is best-effort"
    late = {o.request.request_id: round(o.token_times_ms[0]) for o in admitted if not o.slo_met()}
    assert not late, f"admitted requests late (first token, ms): {late}"
    assert all(len(o.token_times_ms) == 10 for o in outcomes.values())
    assert pool.stats().num_waiting == 0


async def test_the_routers_admission_test_knows_each_replicas_measured_transit(pool):
    await _run_all(pool, [_request("after-measuring")])
    measured_ms = pool.stats().transit_ms_by_replica  # with that request's delivery in it
    assert [m.transit_s * 1e3 for m in pool.router.mirrors] == pytest.approx(
        [measured_ms[m.replica_id] for m in pool.router.mirrors]
    )
    assert all(m.transit_s > 0 for m in pool.router.mirrors)


async def test_cancelling_streams_frees_the_replicas_seats(pool):
    hogs = [_request(f"hog{i}", max_tokens=500) for i in range(6)]
    await _run_all(pool, hogs, max_deltas=2)  # every seat taken, then each stream abandoned
    await anyio.sleep(0.3)
    assert all(m.num_in_flight == 0 for m in pool.router.mirrors)

    outcomes = await _run_all(pool, [_request(f"next{i}") for i in range(6)])
    assert all(o.lanes == {"admitted"} and o.slo_met() for o in outcomes.values())


async def test_killing_a_replica_mid_run_loses_no_request(ray_cluster):
    config = PoolConfig(num_replicas=2, max_waiting_best_effort=2)
    async with Pool(seated_spec(num_seats=2, token_delay_s=0.05), config) as pool:
        victim = pool.replicas[0]
        victim_pid = str(victim.info.pid)
        requests = [_request(f"k{i}", max_tokens=20, ttft_ms=5_000) for i in range(10)]
        outcomes = {}
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for request in requests:
                    group.start_soon(lambda r=request: _consume(pool, r, outcomes))
                await anyio.sleep(0.4)
                ray.kill(victim.actor)

        assert len(outcomes) == 10
        failed = [o for o in outcomes.values() if o.error is not None]
        finished = [o for o in outcomes.values() if o.finished]
        assert len(failed) + len(finished) == 10, "every request ends finished or failed"
        assert failed, "requests streaming from the killed replica cannot be resumed"
        for outcome in failed:
            assert "replica 0 lost" in outcome.error and outcome.pids == {victim_pid}
        for outcome in finished:
            assert len(outcome.token_times_ms) == 20 and victim_pid not in outcome.pids
        stats = pool.stats()
        assert stats.num_resubmitted >= 1, "unstarted requests moved to the live replica"
        assert stats.router.dead_replica_ids == (0,)

        after = await _run_all(pool, [_request("after-kill")])
        assert after["after-kill"].finished and after["after-kill"].error is None
        assert not psutil.pid_exists(int(victim_pid)) or (
            psutil.Process(int(victim_pid)).status() == psutil.STATUS_ZOMBIE
        )


async def test_two_simulated_replicas_serve_a_program_load_with_engine_lanes(ray_cluster):
    # Driver, two actors and Ray's daemons share 2 cores here: Ray delivery takes up to ~40 ms.
    config = PoolConfig(num_replicas=2, transit_allowance_ms=40)
    async with Pool(SimSpec(profile="cpu"), config) as pool:
        assert all(r.info.engine_name == "sim" and r.info.view for r in pool.replicas)
        runtime = Runtime(pool, ignore_eos=True)
        # A first wave teaches each replica its delivery time under load (a burst of Ray
        # submissions on a busy 2-core box takes 50-200 ms, idle round trips a few).
        warmup = await runtime.run_many(sim_agent, [{"task": f"w{i}"} for i in range(6)])
        assert all(r.status is ProgramStatus.FINISHED for r in warmup)
        results = await runtime.run_many(
            sim_agent, [{"task": f"t{i}"} for i in range(12)], concurrency=12
        )
        stats = pool.stats()
        # Each replica measured its own delivery time and plans with it (never below 40 ms).
        assert all(r.transit.num_samples >= 4 for r in pool.replicas)
        assert all(ms >= 40 for ms in stats.transit_ms_by_replica.values())

    assert [r.status for r in results] == [ProgramStatus.FINISHED] * 12
    records = [s for r in results for s in r.stages]
    assert all(len(s.token_times_ms) == 16 for s in records)
    admitted = [s for s in records if not s.best_effort]
    # The engines plan to the caller's deadline; what is left is Ray's delivery jitter on an
    # oversubscribed 2-core box (a few ms, rarely tens).
    late_ms = [s.ttft_ms - s.ttft_budget_ms * 1.05 for s in admitted]
    # Most, not all: a first request can meet a Ray/actor hiccup of hundreds of ms on a loaded
    # 2-core CI box (seen once: 324 ms); a broken router or planner misses far more.
    on_time = sum(late < JITTER_MS for late in late_ms)
    assert on_time >= 0.75 * len(late_ms), f"admitted stages meet their TTFT: {late_ms}"
    assert sum(s.slo_met for s in admitted) >= 0.9 * len(admitted)
    assert sum(s.slo_met for s in records) >= len(records) // 2
    assert min(stats.router.num_routed_by_replica.values()) > 0


# Budgets sized for a Ray pool: delivery alone takes 20-100 ms on a loaded 2-core box, so a
# budget of a few times the prefill (under 100 ms here) would leave the planner nothing to admit.
@af.stage(ttft_ms=250, tpot_ms=150, max_tokens=16)
def sim_think(task: str) -> str:
    return f"Think carefully about {task} " * 20


@af.stage(ttft_ms=150, tpot_ms=150, max_tokens=16)
def sim_answer(task: str, sim_think: str) -> str:
    return f"Answer {task} given {sim_think}"


@af.agent
async def sim_agent(ctx: af.Context, task: str) -> str:
    return await ctx.run(sim_answer, task, await ctx.run(sim_think, task))


async def test_relative_budgets_are_priced_by_the_replicas_engine_whatever_its_scheduler(
    ray_cluster,
):
    # Stock-vLLM replicas have no planner view for the router, yet a "3x" TPOT still means
    # three of their decode steps: the pool prices it with their engine's model (here the
    # A100 profile, about twice the packaged CPU profile's lone step), not a default.
    profile = get_profile("opt-7b-a100").predictor()
    async with Pool(SimSpec(profile="opt-7b-a100", policy="vllm"), PoolConfig()) as pool:
        assert pool.replicas[0].info.view is None
        for context in (64, 1024):
            assert pool.lone_decode_ms(context) == pytest.approx(
                profile.lone_decode_s(context) * 1e3
            )
        assert pool.isolated_prefill_ms(512) == pytest.approx(profile.isolated_prefill_s(512) * 1e3)
    assert pool.lone_decode_ms(64) != pytest.approx(
        StepTimePredictor.default_cpu().lone_decode_s(64) * 1e3
    )
