"""The command line: bad input gives one clear line and exit code 2; a real run writes JSON."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentflow.cli import main

REPO = Path(__file__).resolve().parents[1]


def _program(tmp_path, body: str) -> Path:
    path = tmp_path / "prog.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_missing_program_file_exits_2_with_one_line(capsys, tmp_path):
    assert main(["run", str(tmp_path / "absent.py")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert "Traceback" not in err


def test_file_without_agent_exits_2(capsys, tmp_path):
    assert main(["run", str(_program(tmp_path, "x = 1\n"))]) == 2
    assert "defines no agent" in capsys.readouterr().err


def test_invalid_stage_declaration_exits_2_naming_stage_and_field(capsys, tmp_path):
    path = _program(
        tmp_path,
        """
        import agentflow as af

        @af.stage(ttft_ms=100, tpot_ms=-1, max_tokens=8)
        def think(q: str) -> str:
            return q

        @af.agent
        async def a(ctx, q: str) -> str:
            return await ctx.run(think, q)
        """,
    )
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "stage 'think', field 'tpot_ms'" in err


def test_bad_arguments_exit_2(capsys, tmp_path):
    path = REPO / "examples" / "reasoning.py"
    assert main(["run", str(path), "--concurrency", "0"]) == 2
    assert "--concurrency" in capsys.readouterr().err
    assert main(["run", str(path), "--inputs", str(tmp_path / "none.jsonl")]) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok"}\n{"nope": 1}\n')
    assert main(["run", str(path), "--inputs", str(bad)]) == 2
    assert "row 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["run"])
    assert info.value.code == 2


def test_bad_speculation_settings_exit_2_naming_the_setting(capsys):
    path = str(REPO / "examples" / "reasoning.py")
    assert main(["run", path, "--speculative-tokens", "-1"]) == 2
    assert "num_speculative_tokens" in capsys.readouterr().err
    assert main(["run", path, "--backend", "sim", "--speculative-tokens", "2"]) == 2
    assert "--speculative-tokens is for the vLLM backend" in capsys.readouterr().err


def test_unknown_model_exits_2(capsys):
    code = main(["run", str(REPO / "examples" / "reasoning.py"), "--model", "/nonexistent/m"])
    assert code == 2
    assert "no such directory" in capsys.readouterr().err


def test_help_works_for_every_command():
    for argv in (
        ["--help"],
        ["run", "--help"],
        ["serve", "--help"],
        ["models", "--help"],
        ["models", "prepare", "-h"],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0


@pytest.mark.engine
@pytest.mark.slow
def test_reasoning_example_runs_end_to_end_on_smollm2(tmp_path):
    """The README's main job: the example on the default model, through the real CLI."""
    out = tmp_path / "run.json"
    cli = Path(sys.executable).parent / "agentflow"
    proc = subprocess.run(
        [
            str(cli),
            "run",
            "examples/reasoning.py",
            "--json",
            str(out),
            "--inputs",
            str(_two_questions(tmp_path)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert [o["status"] for o in payload["outputs"]] == ["finished", "finished"]
    assert all(o["output"].strip() for o in payload["outputs"])
    stages = payload["stages"]
    assert sorted(s["stage"] for s in stages) == ["answer", "answer", "think", "think"]
    for rec in stages:
        assert rec["output_tokens"] > 0
        assert rec["ttft_ms"] > 0 and isinstance(rec["slo_met"], bool)
    # "3x" and "8x" a lone decode step, resolved per request against the engine's profile.
    budgets = {(s["program_id"], s["stage"]): s["tpot_budget_ms"] for s in stages}
    for program_id in {s["program_id"] for s in stages}:
        think, answer = budgets[program_id, "think"], budgets[program_id, "answer"]
        assert 0 < think < answer < 8 / 3 * think * 1.5
    assert "Stages" in proc.stdout and "TTFT" in proc.stdout


def _two_questions(tmp_path) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_text('"Why is the sky blue?"\n{"question": "What is 2 + 2?"}\n')
    return path


def test_run_on_the_simulator_needs_no_model(tmp_path):
    out = tmp_path / "sim.json"
    code = main(
        ["run", str(REPO / "examples" / "reasoning.py"), "--backend", "sim", "--json", str(out)]
    )
    assert code == 0
    stages = json.loads(out.read_text())["stages"]
    assert [s["stage"] for s in stages] == ["think", "answer"]
    assert all(s["ttft_ms"] > 0 and s["output_tokens"] > 0 for s in stages)


def test_a_streamed_run_prints_each_stages_tokens_then_the_table(capsys, tmp_path):
    program = str(REPO / "examples" / "reasoning.py")
    out = tmp_path / "streamed.json"
    code = main(["run", program, "--backend", "sim", "--stream", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    think_line = next(line for line in printed.splitlines() if line.startswith("[think] "))
    stages = json.loads(out.read_text())["stages"]
    assert think_line.split().count("tok") == stages[0]["output_tokens"]
    assert printed.index("[think] ") < printed.index("[answer] ") < printed.index("Stages")
    inputs = tmp_path / "two.jsonl"
    inputs.write_text('"a"\n"b"\n')
    assert main(["run", program, "--backend", "sim", "--stream", "--inputs", str(inputs)]) == 2
    assert "--stream shows one run; got 2 inputs" in capsys.readouterr().err


def test_capacity_and_plan_commands_run_on_the_simulator(capsys, tmp_path):
    out = tmp_path / "cap.json"
    assert (
        main(
            [
                "bench",
                "capacity",
                "--backend",
                "sim",
                "--scenario",
                "coding",
                "--quick",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert set(result["scenarios"]["coding"]["capacity_rps"]) == {
        "vllm",
        "sarathi",
        "distserve",
        "agentflow",
    }
    assert main(["bench", "capacity", "--backend", "vllm"]) == 2
    assert main(["plan", "--scenario", "coding", "--rate", "1"]) == 0
    assert "replica(s)" in capsys.readouterr().out


@pytest.mark.slow
def test_run_on_a_ray_pool_of_two_simulated_replicas(tmp_path):
    out = tmp_path / "pool.json"
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("\n".join(json.dumps(f"q{i}") for i in range(4)))
    code = main(
        [
            "run",
            str(REPO / "examples" / "reasoning.py"),
            "--backend",
            "sim",
            "--replicas",
            "2",
            "--inputs",
            str(inputs),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    payload = json.loads(out.read_text())
    assert [o["status"] for o in payload["outputs"]] == ["finished"] * 4
    assert len(payload["stages"]) == 8


def test_a_stage_no_idle_engine_could_serve_is_rejected_before_starting(capsys, tmp_path):
    path = _program(
        tmp_path,
        """
        import agentflow as af

        @af.stage(ttft_ms=1000, tpot_ms=0.5, max_tokens=8)
        def hurried(q: str) -> str:
            return q

        @af.agent
        async def a(ctx, q: str = "x") -> str:
            return await ctx.run(hurried, q)
        """,
    )
    assert main(["run", str(path), "--backend", "sim"]) == 2
    err = capsys.readouterr().err
    assert "stage 'hurried', field 'tpot_ms'" in err and "infeasible" in err


def test_a_budget_the_started_engine_cannot_meet_is_warned_of_and_the_run_goes_on(
    capsys, tmp_path, monkeypatch
):
    # The check before start passes on the profile; the started engine reports that one decode
    # step alone takes 500 ms (a vLLM engine times itself at start), above the 100 ms TPOT.
    from agentflow.engine.sim.engine import SimEngine

    monkeypatch.setattr(SimEngine, "lone_decode_ms", lambda self, num_context_tokens: 500.0)
    path = _program(
        tmp_path,
        """
        import agentflow as af

        @af.stage(ttft="5x", tpot_ms=100, max_tokens=8)
        def steady(q: str) -> str:
            return q

        @af.stage(ttft="5x", tpot="3x", max_tokens=8)
        def relative(q: str) -> str:
            return q

        @af.agent
        async def a(ctx, q: str = "x") -> str:
            return await ctx.run(relative, await ctx.run(steady, q))
        """,
    )
    assert main(["run", str(path), "--backend", "sim"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1, err
    assert "stage 'steady', field 'tpot_ms'" in warnings[0] and "500.0 ms" in warnings[0]
