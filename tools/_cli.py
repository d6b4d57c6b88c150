"""Command-line options shared by the tool servers: which tools to serve."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from agentflow.errors import AgentflowError
from tools.builtin import builtin_toolset
from tools.registry import Tool, ToolSet


def add_toolset_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--tools``, ``--docs-dir`` and ``--toolset`` to a server's parser."""
    parser.add_argument(
        "--tools",
        default=None,
        help="comma-separated built-in tools: calculator, python_eval, search "
        "(default: all that are available)",
    )
    parser.add_argument(
        "--docs-dir", type=Path, default=None, help="folder of .md/.txt files for 'search'"
    )
    parser.add_argument(
        "--toolset",
        default=None,
        metavar="MODULE:ATTR",
        help="serve your own ToolSet (or a function returning one) instead of the built-ins",
    )


def toolset_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ToolSet:
    """Build the toolset the options ask for; exit through `parser.error` on a bad option."""
    try:
        toolset = _load_toolset(args.toolset) if args.toolset else builtin_toolset(args.docs_dir)
        if args.tools:
            toolset = toolset.select(name.strip() for name in args.tools.split(",") if name)
    except (AgentflowError, ImportError, AttributeError, ValueError, TypeError) as exc:
        hint = " ('search' needs --docs-dir)" if "search" in str(exc) else ""
        parser.error(f"{exc}{hint}")
    return toolset


def _load_toolset(reference: str) -> ToolSet:
    module_name, _, attribute = reference.partition(":")
    if not attribute:
        raise ValueError(f"--toolset must look like MODULE:ATTR, got {reference!r}")
    value = getattr(importlib.import_module(module_name), attribute)
    if callable(value) and not isinstance(value, Tool | ToolSet):
        value = value()
    if isinstance(value, ToolSet):
        return value
    if isinstance(value, Tool):
        return ToolSet([value])
    raise TypeError(f"{reference} is a {type(value).__name__}, not a ToolSet or Tool")
