"""Show a program's stage graph: a text listing, Graphviz DOT, or a PNG (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from agentflow.program.agent import Agent

__all__ = ["describe", "to_dot", "write_png"]


def _budget(spec: object) -> str:
    slo = spec.slo  # type: ignore[attr-defined]
    return f"TTFT {slo.describe_ttft()}, TPOT {slo.describe_tpot()}"


def describe(agent: Agent) -> str:
    """Stages with budgets and limits, then edges (loop edges marked)."""
    lines = [f"agent {agent.name}({', '.join(agent.inputs)})"]
    if agent.deadline_ms is not None:
        lines.append(f"  deadline {agent.deadline_ms:g} ms")
    lines.append("stages:")
    for name, spec in agent.graph.nodes(data="spec"):
        lines.append(
            f"  {name:<12} {_budget(spec)}, max_tokens {spec.max_tokens}, tier {spec.tier}"
            f"  <- {', '.join(spec.inputs) or '-'}"
        )
    lines.append("edges:")
    for src, dst, loop in agent.graph.edges(data="loop"):
        lines.append(f"  {src} -> {dst}" + ("  (loop)" if loop else ""))
    if agent.graph.number_of_edges() == 0:
        lines.append("  (none)")
    return "\n".join(lines)


def to_dot(agent: Agent) -> str:
    """Graphviz DOT text: one box per stage labelled with its budget; loops dashed."""
    out = [f'digraph "{agent.name}" {{', "  rankdir=LR;", "  node [shape=box];"]
    for name, spec in agent.graph.nodes(data="spec"):
        out.append(f'  "{name}" [label="{name}\\n{_budget(spec)}"];')
    for src, dst, loop in agent.graph.edges(data="loop"):
        style = " [style=dashed]" if loop else ""
        out.append(f'  "{src}" -> "{dst}"{style};')
    out.append("}")
    return "\n".join(out) + "\n"


def write_png(agent: Agent, path: Path) -> None:
    """Draw the graph with matplotlib (no Graphviz binary needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graph = agent.graph
    layout = nx.spring_layout(graph, seed=0) if graph.number_of_nodes() > 1 else None
    labels = {name: f"{name}\n{_budget(spec)}" for name, spec in graph.nodes(data="spec")}
    fig, ax = plt.subplots(figsize=(7, 4))
    nx.draw_networkx(
        graph,
        pos=layout,
        labels=labels,
        node_shape="s",
        node_size=3000,
        ax=ax,
        font_size=7,
        node_color="#dde8f5",
    )
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
