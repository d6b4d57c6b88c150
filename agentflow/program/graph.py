"""The stage graph: a networkx DiGraph built from stage declarations, and its validation."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from agentflow.errors import ProgramError
from agentflow.program.stage import Stage

__all__ = ["build_stage_graph"]


def build_stage_graph(
    agent_name: str, stages: Iterable[Stage[...]], available_inputs: Iterable[str]
) -> nx.DiGraph:
    """Nodes are stages (attribute `spec`); an edge u → v means v reads u's output.

    Edges from `loop_inputs` carry `loop=True` and are the only ones allowed to close cycles.

    Raises:
        ProgramError: duplicate stage names, unknown inputs, loop inputs that are not inputs, or
            a cycle made of ordinary edges.
    """
    graph = nx.DiGraph(name=agent_name)
    for st in stages:
        if st.name in graph:
            raise ProgramError(
                "two stages share this name", stage=st.name, field="name", code="stage-duplicate"
            )
        graph.add_node(st.name, spec=st.spec)
    known_values = set(available_inputs)
    for name, spec in graph.nodes(data="spec"):
        for loop_input in spec.loop_inputs:
            if loop_input not in spec.inputs:
                raise ProgramError(
                    f"loop input {loop_input!r} is not a parameter of the stage",
                    stage=name,
                    field="loop_inputs",
                    code="loop-input-unknown",
                )
        for value in spec.inputs:
            if value in graph:
                graph.add_edge(value, name, loop=value in spec.loop_inputs)
            elif value not in known_values:
                choices = ", ".join(sorted(known_values | set(graph))) or "none"
                raise ProgramError(
                    f"unknown input {value!r}: not an input of agent '{agent_name}' nor a stage"
                    f" (known: {choices})",
                    stage=name,
                    field="inputs",
                    code="input-unknown",
                )
    _reject_undeclared_cycles(graph)
    return graph


def _reject_undeclared_cycles(graph: nx.DiGraph) -> None:
    forward = nx.DiGraph((u, v) for u, v, loop in graph.edges(data="loop") if not loop)
    try:
        cycle = nx.find_cycle(forward)
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
    raise ProgramError(
        f"cycle {path} is not a declared loop; add the feedback input to loop_inputs=",
        stage=cycle[0][1],
        field="inputs",
        code="graph-cycle",
    )
