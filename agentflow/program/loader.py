"""Load agents from a user's program file (`agentflow run program.py`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from agentflow.errors import ProgramError
from agentflow.program.agent import Agent

__all__ = ["load_agents", "pick_agent"]


def load_agents(path: Path) -> list[Agent]:
    """Import `path` as a module and return the agents it defines, in definition order.

    Raises:
        ProgramError: the file is missing, is not Python, fails to import, or defines no agent.
    """
    if not path.is_file():
        raise ProgramError(f"program file {path} does not exist", code="program-missing")
    if path.suffix != ".py":
        raise ProgramError(f"program file {path} is not a .py file", code="program-not-python")
    module_name = f"agentflow_program_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ProgramError(f"cannot import {path}", code="program-import")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except ProgramError:
        raise
    except Exception as exc:
        raise ProgramError(
            f"{path} failed to import: {type(exc).__name__}: {exc}", code="program-import"
        ) from exc
    agents = [value for value in vars(module).values() if isinstance(value, Agent)]
    if not agents:
        raise ProgramError(
            f"{path} defines no agent: decorate an async function with @agentflow.agent",
            code="program-no-agent",
        )
    return agents


def pick_agent(agents: list[Agent], name: str | None) -> Agent:
    """The agent called `name`, or the only/last-defined one when no name is given.

    Raises:
        ProgramError: no agent has that name.
    """
    if name is None:
        return agents[-1]
    for candidate in agents:
        if candidate.name == name:
            return candidate
    names = ", ".join(a.name for a in agents)
    raise ProgramError(f"no agent named {name!r} (defined: {names})", code="agent-unknown")
