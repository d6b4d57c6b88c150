"""Loading agents from program files."""

import textwrap

import pytest

from agentflow.errors import ProgramError
from agentflow.program.loader import load_agents, pick_agent


def _write(tmp_path, body: str):
    path = tmp_path / "prog.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_loads_every_agent_a_file_defines(tmp_path):
    path = _write(
        tmp_path,
        """
        import agentflow as af

        @af.agent
        async def first(ctx, x: str) -> str:
            return x

        @af.agent
        async def second(ctx) -> str:
            return "y"
        """,
    )
    agents = load_agents(path)
    assert [a.name for a in agents] == ["first", "second"]
    assert pick_agent(agents, "first").name == "first"
    assert pick_agent(agents, None).name == "second"
    with pytest.raises(ProgramError, match="no agent named"):
        pick_agent(agents, "third")


def test_missing_file_and_file_without_agents_are_program_errors(tmp_path):
    with pytest.raises(ProgramError, match="does not exist") as info:
        load_agents(tmp_path / "nope.py")
    assert info.value.code == "program-missing"
    empty = _write(tmp_path, "x = 1\n")
    with pytest.raises(ProgramError, match="defines no agent"):
        load_agents(empty)


def test_import_failure_is_reported_with_its_cause(tmp_path):
    path = _write(tmp_path, "raise RuntimeError('boom')\n")
    with pytest.raises(ProgramError, match="boom"):
        load_agents(path)
