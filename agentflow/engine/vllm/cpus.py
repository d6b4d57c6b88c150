"""The CPUs this process may really use, for pinning the CPU engine's model worker.

`os.cpu_count()` counts the host's cores. In a container that is wrong twice over: the
scheduler affinity may allow only some of them, and a cgroup quota may cap the CPU time to
fewer still. Pinning a model worker's OpenMP threads from the host count on a 2-CPU quota
starts one spinning thread per host core, and the quota then throttles the whole engine for
most of every period: steps that take milliseconds take seconds.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["cgroup_cpu_quota", "default_omp_bind", "usable_cpus"]

_CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: Path = _CGROUP_ROOT) -> float | None:
    """CPUs' worth of time the cgroup quota allows (cgroup v2, then v1); None if unlimited."""
    v2 = root / "cpu.max"
    if v2.is_file():
        quota, _, period = v2.read_text().partition(" ")
        if quota.strip() == "max":
            return None
        return int(quota) / int(period or "100000")
    v1_quota, v1_period = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
    if v1_quota.is_file() and v1_period.is_file():
        quota_us = int(v1_quota.read_text())
        return None if quota_us <= 0 else quota_us / int(v1_period.read_text())
    return None


def usable_cpus(root: Path = _CGROUP_ROOT) -> list[int]:
    """Ids of the CPUs to run on: the affinity set, cut to the quota (the highest ids kept)."""
    return _cut_to_quota(_allowed_cpus(), root)


def default_omp_bind(root: Path = _CGROUP_ROOT) -> str:
    """VLLM_CPU_OMP_THREADS_BIND for one engine on this machine.

    On up to 4 usable CPUs the model worker gets the last one to itself and the frontend and
    engine core share the rest (unpinned, a busy frontend stalls steps for seconds). On more,
    vLLM's own 'auto' when every allowed CPU is usable, else all usable CPUs but the first.
    """
    allowed = _allowed_cpus()
    cpus = _cut_to_quota(allowed, root)
    if len(cpus) <= 4:
        return str(cpus[-1])
    if len(cpus) == len(allowed):
        return "auto"
    return ",".join(str(c) for c in cpus[1:])


def _allowed_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))  # pragma: no cover - not Linux


def _cut_to_quota(allowed: list[int], root: Path) -> list[int]:
    try:
        quota = cgroup_cpu_quota(root)
    except (OSError, ValueError):
        quota = None
    return allowed if quota is None else allowed[-max(1, math.ceil(quota)) :]
