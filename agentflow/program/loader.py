"""Load agents from a user's program file (`agentflow run program.py`)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from agentflow.errors import ProgramError
from agentflow.program.agent import Agent

__all__ = ["LoadedProgram", "load_agents", "load_program", "pick_agent"]

TOOL_CLIENT_HOOK = "tool_client"
"""A program file may define `tool_client()`: an async context manager yielding the
`tools.client.ToolClient` its agents call (e.g. starting built-in servers on loopback)."""


@dataclass(frozen=True, slots=True)
class LoadedProgram:
    """What a program file provides."""

    agents: list[Agent]
    tool_client: Callable[[], Any] | None
    """The file's `tool_client` hook, if it defines one."""


def load_program(path: Path) -> LoadedProgram:
    """Import a program file: its agents and its optional `tool_client` hook.

    Raises:
        ProgramError: see `load_agents`; also a `tool_client` that is not callable.
    """
    module = _import(path)
    hook = getattr(module, TOOL_CLIENT_HOOK, None)
    if hook is not None and not callable(hook):
        raise ProgramError(f"{path}: `{TOOL_CLIENT_HOOK}` must be callable", code="tool-hook")
    return LoadedProgram(agents=_agents_of(module, path), tool_client=hook)


def load_agents(path: Path) -> list[Agent]:
    """Import `path` as a module and return the agents it defines, in definition order.

    Raises:
        ProgramError: the file is missing, is not Python, fails to import, or defines no agent.
    """
    return _agents_of(_import(path), path)


def _import(path: Path) -> ModuleType:
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
    return module


def _agents_of(module: ModuleType, path: Path) -> list[Agent]:
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
