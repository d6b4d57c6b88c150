"""Tool-calling agent: a tight "act" loop calls tools, a loose "final" stage answers.

Tools come from real tool servers. By default this file starts the built-in HTTP tool server
(calculator, document search over examples/docs, sandboxed Python expressions) on a free
loopback port for the duration of the run. To use servers you run yourself, start one with
`python -m tools.http_server --port 8001` and set AGENTFLOW_TOOLS_URL=http://127.0.0.1:8001
(MCP servers work too: see `tools.endpoint`).

Run it: `agentflow run examples/tool_calling.py --input "What is 17 * 23?"`
"""

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import agentflow as af
from stages import tool_loop
from tools.builtin import builtin_toolset
from tools.client import ToolClient
from tools.endpoint import HttpEndpoint
from tools.http_server import running_http_server

TOOLS = ["calculator", "search", "python_eval"]
DESCRIPTIONS = (
    '- calculator: {"expression": "2 * (3 + 4)"} evaluates arithmetic\n'
    '- search: {"query": "words"} finds passages in the local documents\n'
    '- python_eval: {"expression": "sorted([3, 1, 2])"} evaluates one Python expression'
)


@contextlib.asynccontextmanager
async def tool_client() -> AsyncIterator[ToolClient]:
    """Found by `agentflow run`: the tool servers this program's agents call."""
    if url := os.environ.get("AGENTFLOW_TOOLS_URL"):
        async with ToolClient([HttpEndpoint(url=url)]) as client:
            yield client
        return
    toolset = builtin_toolset(docs_dir=Path(__file__).parent / "docs")
    async with running_http_server(toolset) as url, ToolClient([HttpEndpoint(url=url)]) as client:
        yield client


@af.agent(stages=tool_loop.STAGES, extra_inputs=tool_loop.EXTRA_INPUTS, deadline_ms=60_000)
async def tool_agent(ctx: af.Context, question: str = "What is 17 * 23?") -> str:
    return await tool_loop.tool_loop(
        ctx, question, tools=TOOLS, tool_descriptions=DESCRIPTIONS, max_iterations=4
    )
