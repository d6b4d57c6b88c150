"""One local Ray instance (loopback, no dashboard) for every Ray test of this package."""

from pathlib import Path

import pytest

from agentflow.cluster import connect_ray, disconnect_ray

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="package")
def ray_cluster():
    # Replica actors import this test package (the fake engine) by module path.
    started = connect_ray(
        None, num_cpus=8, runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}}
    )
    yield
    if started:
        disconnect_ray()
