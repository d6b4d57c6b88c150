"""Joining a Ray cluster, or starting a local one bound to the loopback interface."""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["connect_ray", "disconnect_ray"]

_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's switch for single-machine mode: with it off, a local instance binds 127.0.0.1 rather
than the host's routable address (the default on Linux)."""


def connect_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    object_store_mib: int = 256,
    runtime_env: dict[str, Any] | None = None,
) -> bool:
    """Join the cluster at `address`, or start a local Ray instance on loopback.

    Does nothing if this process is already connected to Ray.

    Args:
        address: a Ray cluster address ("ray://host:10001", "host:6379" or "auto"); None starts
            a private local instance (no dashboard, loopback only).
        num_cpus: logical CPUs of a local instance (None: Ray's default, all cores).
        object_store_mib: object store size of a local instance (streams carry small objects).
        runtime_env: Ray runtime environment for the replicas (e.g. `env_vars`).

    Returns:
        Whether this call started or joined Ray (and so `disconnect_ray` should undo it).
    """
    if address is None:
        os.environ.setdefault(_LOOPBACK_ENV, "0")
        constants = sys.modules.get("ray._private.ray_constants")
        if constants is not None and os.environ[_LOOPBACK_ENV] == "0":
            # Ray reads the switch once, at import; honour it if Ray was imported first.
            setattr(constants, "ENABLE_RAY_CLUSTER", False)  # noqa: B010
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            object_store_memory=object_store_mib * 2**20,
            runtime_env=runtime_env,
            log_to_driver=True,
            configure_logging=False,
        )
    else:
        ray.init(address=address, runtime_env=runtime_env, configure_logging=False)
    return True


def disconnect_ray() -> None:
    """Leave Ray (a local instance started by `connect_ray` stops with it)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
