"""Which CPUs the CPU engine pins its model worker to, in containers that hide the truth."""

from __future__ import annotations

import os

import pytest

from agentflow.engine.vllm.cpus import cgroup_cpu_quota, default_omp_bind, usable_cpus


@pytest.fixture
def host_with_16_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)


def test_a_cgroup_v2_quota_is_read_in_cpus(tmp_path):
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 2.0
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None


def test_a_cgroup_v1_quota_is_read_and_minus_one_means_unlimited(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("150000\n")
    assert cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(tmp_path) is None


def test_a_two_cpu_quota_on_a_16_core_host_pins_the_worker_to_one_cpu(tmp_path, host_with_16_cores):
    # The host count would have asked vLLM for 'auto': a spinning thread per core on 2 CPUs.
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    assert usable_cpus(tmp_path) == [14, 15]
    assert default_omp_bind(tmp_path) == "15"


def test_a_fractional_quota_rounds_up_to_whole_cpus(tmp_path, host_with_16_cores):
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert len(usable_cpus(tmp_path)) == 3


def test_a_large_quota_leaves_the_first_usable_cpu_to_the_frontend(tmp_path, host_with_16_cores):
    (tmp_path / "cpu.max").write_text("600000 100000\n")
    assert default_omp_bind(tmp_path) == "11,12,13,14,15"


def test_an_unlimited_large_machine_uses_vllms_own_binding(tmp_path, host_with_16_cores):
    assert usable_cpus(tmp_path) == list(range(16))
    assert default_omp_bind(tmp_path) == "auto"


def test_an_unreadable_quota_falls_back_to_the_affinity(tmp_path, host_with_16_cores):
    (tmp_path / "cpu.max").write_text("garbage\n")
    assert usable_cpus(tmp_path) == list(range(16))
