"""Built-in tools: calculator, BM25 document search, sandboxed Python expressions."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.builtin.calculator import calculator_tool
from tools.builtin.python_eval import SandboxLimits, python_eval_tool
from tools.builtin.search import search_tool
from tools.endpoint import McpStdioEndpoint
from tools.registry import Tool, ToolSet

__all__ = ["BUILTIN_TOOL_NAMES", "builtin_stdio_endpoint", "builtin_toolset"]

BUILTIN_TOOL_NAMES = ("calculator", "python_eval", "search")


def builtin_toolset(
    docs_dir: Path | None = None, *, sandbox_limits: SandboxLimits | None = None
) -> ToolSet:
    """The built-in tools: ``calculator``, ``python_eval`` and, given `docs_dir`, ``search``.

    Args:
        docs_dir: folder of .md/.txt/.rst files for ``search`` (omitted when None).
        sandbox_limits: CPU, memory and time limits for ``python_eval``.

    Raises:
        ConfigError: `docs_dir` does not exist.
    """
    tools: list[Tool[..., Any]] = [calculator_tool(), python_eval_tool(sandbox_limits)]
    if docs_dir is not None:
        return ToolSet([*tools, search_tool(Path(docs_dir))])
    return ToolSet(tools)


def builtin_stdio_endpoint(
    names: Sequence[str] | None = None, docs_dir: Path | None = None
) -> McpStdioEndpoint:
    """An endpoint for the built-in tools that the `ToolClient` starts itself, over MCP stdio.

    The client launches ``python -m tools.mcp_server --transport stdio`` with this
    interpreter on first use and stops it when the client closes.

    Args:
        names: which built-in tools (default: all available, ``search`` if `docs_dir`).
        docs_dir: documents folder for ``search``.
    """
    args = ["-m", "tools.mcp_server", "--transport", "stdio"]
    if names is not None:
        args += ["--tools", ",".join(names)]
    if docs_dir is not None:
        args += ["--docs-dir", str(Path(docs_dir).resolve())]
    package_root = Path(__file__).resolve().parents[2]  # the folder that holds `tools/`
    return McpStdioEndpoint(command=sys.executable, args=tuple(args), cwd=str(package_root))
