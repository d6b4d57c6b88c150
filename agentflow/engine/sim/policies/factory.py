"""The policy factory: a policy name and a profile become a ready `Deployment`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agentflow.engine.sim.deployment import Deployment
from agentflow.engine.sim.instance import Instance, SchedulingPolicy
from agentflow.engine.sim.policies.agentflow import AgentflowPolicy
from agentflow.engine.sim.policies.fcfs import FCFSChunkedPolicy, sarathi_token_budget
from agentflow.engine.sim.profiles import Drafter, SimProfile, get_profile, list_profiles
from agentflow.engine.sim.request import SimRequest
from agentflow.errors import ConfigError
from agentflow.metrics.attainment import TOLERANCE
from agentflow.planner import PlannerConfig, SpecConfig, make_planner

__all__ = ["POLICY_NAMES", "PolicyOptions", "make_deployment"]

DEFAULT_TIGHTEST_TPOT_S = 0.05


@dataclass(frozen=True, slots=True)
class PolicyOptions:
    """Settings shared by the policy builders."""

    num_replicas: int = 1
    """Colocated replicas (DistServe: prefill/decode pairs), each with the profile's GPUs."""
    tightest_tpot_s: float = DEFAULT_TIGHTEST_TPOT_S
    """Sarathi-Serve tunes its fixed budget offline to this TPOT (the workload's tightest)."""
    vllm_token_budget: int = 8192
    """Stock vLLM's `max_num_batched_tokens` (also DistServe's prefill batch cap)."""
    planner: str = "fast"
    """agentflow's planner ("fast" or "exact")."""
    max_step_s: float = 1.0
    """agentflow: the longest step the planner plans (`PlannerConfig.horizon_s`). A request
    that arrives during a step waits for its end, so long steps cost short prompts their TTFT."""
    jitter: float = 0.0
    """Relative standard deviation of true step times around the predictor."""
    seed: int = 0
    transfer_latency_s: float = 0.001
    """DistServe: fixed part of a KV hand-off."""
    speculation: bool = False
    """Speculative decoding with the profile's draft model: agentflow picks verify lengths per
    SLO tier (SLOs-Serve §4); the baselines verify `fixed_spec_len` tokens every decode."""
    fixed_spec_len: int = 4
    """The baselines' verify length under speculation (vLLM's `num_speculative_tokens` + 1)."""
    tpot_tolerance: float = TOLERANCE
    """agentflow: decode paced to TPOT·(1 + this) (`PlannerConfig.tpot_tolerance`). The scored
    tolerance by default: simulated steps take the predicted time unless `jitter` is set.
    Replaying the real CPU engine, use its setting (`VLLMEngineConfig.tpot_tolerance`)."""


def _instance(
    name: str,
    profile: SimProfile,
    policy: SchedulingPolicy,
    options: PolicyOptions,
    index: int,
    *,
    is_prefill_only: bool = False,
) -> Instance:
    return Instance(
        name,
        profile.predictor(),
        profile.limits(),
        policy,
        jitter=options.jitter,
        seed=options.seed * 1000 + index,
        is_prefill_only=is_prefill_only,
        acceptance=profile.drafter.acceptance if profile.drafter is not None else 0.0,
    )


def _fixed_spec_len(profile: SimProfile, options: PolicyOptions) -> int:
    """The baselines' verify length: 1 without speculation."""
    if not options.speculation:
        return 1
    drafter = _drafter(profile)
    return min(options.fixed_spec_len, drafter.max_spec_len)


def _drafter(profile: SimProfile) -> Drafter:
    if profile.drafter is None:
        raise ConfigError(
            f"sim speculation: profile {profile.name!r} has no draft model; profiles with one: "
            f"{[p for p in list_profiles() if get_profile(p).drafter is not None]}"
        )
    return profile.drafter


def _vllm(profile: SimProfile, options: PolicyOptions) -> Deployment:
    entry = [
        _instance(
            f"vllm{i}",
            profile,
            FCFSChunkedPolicy("vllm", options.vllm_token_budget, _fixed_spec_len(profile, options)),
            options,
            i,
        )
        for i in range(options.num_replicas)
    ]
    return Deployment("vllm", entry)


def _sarathi(profile: SimProfile, options: PolicyOptions) -> Deployment:
    budget = sarathi_token_budget(profile.predictor(), options.tightest_tpot_s)
    entry = [
        _instance(
            f"sarathi{i}",
            profile,
            FCFSChunkedPolicy("sarathi", budget, _fixed_spec_len(profile, options)),
            options,
            i,
        )
        for i in range(options.num_replicas)
    ]
    return Deployment("sarathi", entry)


def _agentflow(profile: SimProfile, options: PolicyOptions) -> Deployment:
    config = PlannerConfig(
        kv_blocks_total=profile.kv_blocks_total,
        block_size=profile.block_size,
        max_num_batched_tokens=profile.max_num_batched_tokens,
        max_num_seqs=profile.max_num_seqs,
        planner=options.planner,
        horizon_s=options.max_step_s,
        speculation=_spec_config(profile) if options.speculation else None,
        tpot_tolerance=options.tpot_tolerance,
    )
    entry = [
        _instance(
            f"agentflow{i}",
            profile,
            AgentflowPolicy(
                make_planner(options.planner),
                profile.predictor(),
                config,
                max_spare_step_s=options.tightest_tpot_s,
            ),
            options,
            i,
        )
        for i in range(options.num_replicas)
    ]
    return Deployment("agentflow", entry)


def _spec_config(profile: SimProfile) -> SpecConfig:
    drafter = _drafter(profile)
    return SpecConfig(max_spec_len=drafter.max_spec_len, alpha=drafter.acceptance)


def _distserve(profile: SimProfile, options: PolicyOptions) -> Deployment:
    if profile.disaggregated_half is None:
        raise ConfigError(
            f"distserve: profile {profile.name!r} has no half-size profile to split its "
            f"{profile.num_gpus} GPU(s) into prefill and decode instances; use a multi-GPU "
            "profile such as 'opt-13b-a100-tp2'"
        )
    half = get_profile(profile.disaggregated_half)
    budget = max(options.vllm_token_budget, half.max_num_batched_tokens)
    n = options.num_replicas
    prefill = [
        _instance(
            f"prefill{i}",
            half,
            FCFSChunkedPolicy("distserve-prefill", budget),
            options,
            i,
            is_prefill_only=True,
        )
        for i in range(n)
    ]
    decode = [
        _instance(
            f"decode{i}",
            half,
            FCFSChunkedPolicy("distserve-decode", budget, _fixed_spec_len(profile, options)),
            options,
            n + i,
        )
        for i in range(n)
    ]
    bytes_per_token = half.kv_bytes_per_token
    link = half.link_bytes_per_s

    def transfer_s(request: SimRequest) -> float:
        seconds = options.transfer_latency_s
        if link > 0:
            seconds += request.num_computed * bytes_per_token / link
        return seconds

    return Deployment("distserve", prefill, decode=decode, transfer_s=transfer_s)


_BUILDERS: dict[str, Callable[[SimProfile, PolicyOptions], Deployment]] = {
    "vllm": _vllm,
    "sarathi": _sarathi,
    "distserve": _distserve,
    "agentflow": _agentflow,
}

POLICY_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def make_deployment(
    policy: str, profile: SimProfile, options: PolicyOptions | None = None
) -> Deployment:
    """Build the deployment of `policy` ("vllm", "sarathi", "distserve", "agentflow").

    Raises:
        ConfigError: unknown policy, or a profile the policy cannot use.
    """
    try:
        builder = _BUILDERS[policy]
    except KeyError:
        raise ConfigError(
            f"sim policy: unknown policy {policy!r}; choose one of {list(POLICY_NAMES)}"
        ) from None
    return builder(profile, options or PolicyOptions())
