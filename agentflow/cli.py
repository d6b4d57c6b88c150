"""`agentflow` command line: run and serve programs, profile the engine, prepare models.

Exit codes: 0 success, 2 bad input (program or arguments), 1 runtime failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from agentflow.engine.vllm.engine import stop_on_sigterm
from agentflow.errors import AgentflowError, ConfigError, ModelError, ProgramError
from agentflow.metrics.report import stage_summary_table, stage_table
from agentflow.program.agent import Agent
from agentflow.program.loader import LoadedProgram, load_program, pick_agent
from agentflow.runtime.records import ProgramResult, ProgramStatus

__all__ = ["main"]

EXIT_OK, EXIT_RUNTIME, EXIT_BAD_INPUT = 0, 1, 2
_MAX_ROWS_PER_CALL = 24

console = Console(stderr=True)
stdout = Console()


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our bad-input code (2) and one clear line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _engine_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine")
    group.add_argument(
        "--backend", choices=["vllm", "sim"], default="vllm", help="real vLLM or the simulator"
    )
    group.add_argument(
        "--sim-profile", default="cpu", help="simulator hardware/model profile (sim backend)"
    )
    group.add_argument(
        "--replicas", type=int, default=1, help="engine replicas (more than 1: a Ray pool)"
    )
    group.add_argument(
        "--routing", choices=["agentflow", "round_robin", "least_loaded"], default="agentflow"
    )
    group.add_argument("--ray-address", help="join this Ray cluster (default: start a local one)")
    group.add_argument("--model", help="model directory or prepared model name (default: SmolLM2)")
    group.add_argument("--policy", choices=["agentflow", "fcfs", "edf"], default="agentflow")
    group.add_argument("--kv-cache-mib", type=int, default=512, help="KV-cache size (MiB)")
    group.add_argument("--max-num-seqs", type=int, default=64)
    group.add_argument("--max-num-batched-tokens", type=int, default=512)
    group.add_argument("--load-format", default="auto", help="'dummy' for random weights")
    group.add_argument(
        "--speculative-tokens",
        type=int,
        default=0,
        metavar="K",
        help="vLLM n-gram speculation, up to K drafts per decode (0: off); under the agentflow"
        " policy the planner picks each SLO tier's length",
    )
    group.add_argument("--trace", type=Path, help="write the scheduler's JSON-lines trace here")


def _tracing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--otlp-traces-endpoint",
        metavar="URL",
        help="export a span per program and stage call to this OpenTelemetry collector (gRPC;"
        " OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf for OTLP over HTTP)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full command-line grammar."""
    parser = _Parser(
        prog="agentflow",
        description=__doc__,
        epilog="Capacity tooling: `agentflow bench capacity --backend sim --scenario NAME|all"
        " [--replicas N] [--quick]` and `agentflow plan --scenario NAME --rate R` (each has"
        " its own --help).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run a program on the engine")
    run.add_argument("program", type=Path, help="Python file defining an @agentflow.agent")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--input", help="text for the agent's first input")
    source.add_argument("--inputs", type=Path, help="JSON lines: one object or string per run")
    run.add_argument("--agent", help="which agent, if the file defines several")
    run.add_argument("--concurrency", type=int, default=8, help="instances in flight")
    run.add_argument("--json", type=Path, help="write outputs and stage records here")
    run.add_argument("--ignore-eos", action="store_true", help="always generate max_tokens")
    run.add_argument(
        "--stream", action="store_true", help="print each stage's tokens as they come (one input)"
    )
    _engine_options(run)
    _tracing_options(run)

    bench = commands.add_parser("bench", help="drive many instances at a Poisson rate")
    bench.add_argument("program", type=Path, help="Python file defining an @agentflow.agent")
    bench.add_argument("--rate", type=float, required=True, help="instances per second")
    bench.add_argument("--duration", type=float, required=True, help="seconds of arrivals")
    bench.add_argument("--inputs", type=Path, help="JSON lines, cycled over the instances")
    bench.add_argument("--agent", help="which agent, if the file defines several")
    bench.add_argument("--seed", type=int, default=0, help="seed of the arrival process")
    bench.add_argument("--json", type=Path, help="write stage records and the summary here")
    bench.add_argument("--ignore-eos", action="store_true", help="always generate max_tokens")
    _engine_options(bench)
    _tracing_options(bench)

    graph = commands.add_parser("graph", help="show a program's stages, budgets and edges")
    graph.add_argument("program", type=Path)
    graph.add_argument("--agent", help="which agent, if the file defines several")
    graph.add_argument("--dot", type=Path, help="also write Graphviz DOT here")
    graph.add_argument("--png", type=Path, help="also draw a PNG here")

    serve = commands.add_parser(
        "serve", help="serve OpenAI-compatible completions (and a program's agents) over HTTP"
    )
    serve.add_argument(
        "program", type=Path, nargs="?", help="a program file whose agents /v1/agents serves"
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind")
    serve.add_argument("--port", type=int, default=8000, help="TCP port")
    serve.add_argument("--served-model-name", help="the model id clients name (default: dir name)")
    serve.add_argument(
        "--api-key",
        default=os.environ.get("AGENTFLOW_API_KEY"),
        help="require `Authorization: Bearer KEY` on /v1 routes (default: $AGENTFLOW_API_KEY)",
    )
    serve.add_argument(
        "--default-ttft",
        default="10x",
        help="TTFT of a request that names none: ms, or a slowdown of its prefill like '10x'",
    )
    serve.add_argument(
        "--default-tpot",
        "--default-tpot-ms",
        dest="default_tpot",
        default="200",
        help="TPOT of a request that names none: ms, or a slowdown of a lone decode step ('8x')",
    )
    serve.add_argument("--default-max-tokens", type=int, default=256)
    _engine_options(serve)
    _tracing_options(serve)

    profile = commands.add_parser("profile", help="fit the step-time predictor on this machine")
    profile.add_argument(
        "--quick",
        action="store_true",
        help="a smaller grid, about a tenth of the full one's steps",
    )
    profile.add_argument("--json", type=Path, help="write samples and accuracy here")
    _engine_options(profile)

    models = commands.add_parser("models", help="prepare or list models")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    prepare = model_commands.add_parser("prepare", help="prepare the default SmolLM2 model")
    prepare.add_argument("--force", action="store_true", help="convert again even if cached")
    model_commands.add_parser("list", help="list prepared models")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `agentflow` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    if delegated := _delegated_command(words):
        return delegated(words)
    args = build_parser().parse_args(words)
    # SIGTERM takes the Ctrl-C path, so the engine's shielded shutdown runs and no engine
    # process outlives us (vLLM's engine core does not exit on its own when we die).
    stop_on_sigterm()
    try:
        return _COMMANDS[args.command](args)
    except (ProgramError, ConfigError) as exc:
        return _fail(args, exc, EXIT_BAD_INPUT)
    except ModelError as exc:
        return _fail(
            args, exc, EXIT_BAD_INPUT if args.command in {"run", "serve"} else EXIT_RUNTIME
        )
    except AgentflowError as exc:
        return _fail(args, exc, EXIT_RUNTIME)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


def _delegated_command(words: list[str]) -> Callable[[list[str]], int] | None:
    """`bench capacity` and `plan` have parsers of their own (the capacity tooling's)."""

    def capacity(argv: list[str]) -> int:
        from agentflow.workloads.bench import run_capacity_cli

        rest = argv[2:]
        if "--backend" in rest:
            at = rest.index("--backend")
            backend = rest[at + 1] if at + 1 < len(rest) else ""
            if backend != "sim":
                console.print(
                    "error: `bench capacity` runs on the simulator (--backend sim); for the real"
                    " engine run `python benchmarks/capacity.py --backend vllm`",
                    soft_wrap=True,
                    markup=False,
                )
                return EXIT_BAD_INPUT
            del rest[at : at + 2]
        run_capacity_cli(rest)
        return EXIT_OK

    def plan(argv: list[str]) -> int:
        from agentflow.workloads.planning import run_plan_cli

        run_plan_cli(argv[1:])
        return EXIT_OK

    if words[:2] == ["bench", "capacity"]:
        return capacity
    if words[:1] == ["plan"]:
        return plan
    return None


def _fail(args: argparse.Namespace, exc: Exception, code: int) -> int:
    if args.debug:
        console.print_exception()
    # Text, not markup: messages quote user values such as "['x']" that markup would eat.
    console.print(Text("error: ", style="red") + Text(str(exc)), soft_wrap=True)
    return code


def _cmd_models(args: argparse.Namespace) -> int:
    from agentflow.models import list_models, prepare_default_model

    if args.models_command == "prepare":
        with console.status("preparing SmolLM2-135M-Instruct (download GGUF, dequantize)"):
            path = prepare_default_model(force=args.force)
        stdout.print(f"default model ready at {path}")
        return EXIT_OK
    for info in list_models():
        stdout.print(f"{info.name}\t{info.size_mb:.0f} MB\t{info.path}")
    return EXIT_OK


def _read_inputs(args: argparse.Namespace, agent: Agent) -> list[dict[str, Any]]:
    """Keyword inputs for each instance, checked against the agent's parameters."""
    first = agent.inputs[0] if agent.inputs else None
    rows: list[Any]
    if args.inputs is not None:
        if not args.inputs.is_file():
            raise ConfigError(f"--inputs: {args.inputs} does not exist")
        rows = []
        for number, line in enumerate(args.inputs.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--inputs line {number}: not JSON ({exc.msg})") from exc
    else:
        text = getattr(args, "input", None)
        rows = [text] if text is not None else [{}]
    inputs = []
    for number, row in enumerate(rows, start=1):
        if isinstance(row, str):
            if first is None:
                raise ConfigError(f"agent '{agent.name}' takes no inputs, got text (row {number})")
            row = {first: row}
        if not isinstance(row, dict):
            raise ConfigError(f"input row {number}: expected a JSON object or string")
        unknown = set(row) - set(agent.inputs)
        if unknown:
            raise ConfigError(f"input row {number}: unknown inputs {sorted(unknown)}")
        inputs.append(row)
    return inputs


def _engine_config(args: argparse.Namespace) -> Any:
    """The engine settings the command line asks for (validated)."""
    from agentflow.models import resolve_model

    # vLLM's INFO/WARNING logs drown the result table; --debug brings them back. The engine's
    # child processes inherit these.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO" if args.debug else "ERROR")
    if not args.debug:
        os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
        os.environ.setdefault("TQDM_DISABLE", "1")
    # The simulator needs no weights: it serves the profile given by --sim-profile.
    sim = getattr(args, "backend", "vllm") == "sim"
    if sim and args.speculative_tokens:
        raise ConfigError(
            "--speculative-tokens is for the vLLM backend; the simulator models a draft model"
            " through its profile (`agentflow bench capacity --speculation`)"
        )
    model = Path(args.model or f"sim-{args.sim_profile}") if sim else resolve_model(args.model)
    from agentflow.engine.vllm import VLLMEngineConfig

    try:
        return VLLMEngineConfig(
            model=model,
            policy=args.policy,
            kv_cache_mib=args.kv_cache_mib,
            max_num_seqs=args.max_num_seqs,
            max_num_batched_tokens=args.max_num_batched_tokens,
            load_format=args.load_format,
            trace_path=args.trace,
            num_speculative_tokens=args.speculative_tokens,
            measure_speed=True,
        )
    except ValueError as exc:
        raise ConfigError(f"engine settings: {exc}") from exc


def _cmd_profile(args: argparse.Namespace) -> int:
    from agentflow.engine.vllm.profile_store import profile_path
    from agentflow.engine.vllm.profiling import ProfileGrid, measure_steps, split_samples
    from agentflow.planner import StepTimePredictor, evaluate

    config = _engine_config(args)
    grid = ProfileGrid.quick() if args.quick else ProfileGrid()
    with console.status(f"profiling {config.model.name}: running the batch grid"):
        samples = anyio.run(measure_steps, config, grid)
    train, held_out = split_samples(samples)
    accuracy = evaluate(StepTimePredictor.fit(train), held_out)
    predictor = StepTimePredictor.fit(samples)
    path = profile_path(config.model, config.dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    predictor.save(path)
    stdout.print(
        f"{len(samples)} steps; held-out R² {accuracy['r2']:.3f}, MAPE {accuracy['mape']:.1%}"
    )
    stdout.print(f"profile saved to {path}: {predictor}")
    if args.json is not None:
        args.json.write_text(json.dumps({"accuracy": accuracy, "profile": predictor.to_json()}))
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise ConfigError(f"--concurrency must be ≥ 1, got {args.concurrency}")
    program = load_program(args.program)
    agent = pick_agent(program.agents, args.agent)
    inputs = _read_inputs(args, agent)
    if args.stream and len(inputs) != 1:
        raise ConfigError(f"--stream shows one run; got {len(inputs)} inputs")
    config = _engine_config(args)
    _check_feasible(agent, config, args)

    async def work(runtime: Any) -> list[ProgramResult]:
        if args.stream:
            return [await _print_stream(runtime, agent, inputs[0])]
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
            task = progress.add_task(f"running {agent.name}", total=len(inputs))
            return await runtime.run_many(  # type: ignore[no-any-return]
                agent,
                inputs,
                concurrency=args.concurrency,
                on_done=lambda _: progress.advance(task),
            )

    results = anyio.run(_with_runtime, config, program, args, work, [agent])
    _report(results, args, show_outputs=not args.stream)
    if args.json is not None:
        _write_json(args.json, {"outputs": [r.to_json() for r in results], **_records(results)})
    return EXIT_OK if all(r.status == ProgramStatus.FINISHED for r in results) else EXIT_RUNTIME


async def _print_stream(runtime: Any, agent: Agent, inputs: dict[str, Any]) -> ProgramResult:
    """Run one instance, printing each stage's output as it is generated."""
    from agentflow.runtime.events import (
        ProgramFinished,
        StageDelta,
        StageFinished,
        StageStarted,
        ToolCalled,
    )

    result: ProgramResult | None = None
    async with runtime.stream(agent, inputs) as events:
        async for event in events:
            if isinstance(event, StageStarted):
                stdout.print(Text(f"[{event.stage}] ", style="bold"), end="")
            elif isinstance(event, StageDelta):
                stdout.print(Text(event.text), end="", soft_wrap=True)
            elif isinstance(event, StageFinished):
                stdout.print()
            elif isinstance(event, ToolCalled):
                call = event.record
                outcome = "ok" if call.ok else f"failed: {call.error}"
                stdout.print(Text(f"[tool {call.tool}] {outcome}", style="dim"))
            elif isinstance(event, ProgramFinished):
                result = event.result
    assert result is not None  # the stream always ends with ProgramFinished
    return result


def _cmd_bench(args: argparse.Namespace) -> int:
    from agentflow.runtime.bench import poisson_offsets_s, run_load, summarize

    if not (args.rate > 0 and args.duration > 0):
        raise ConfigError("--rate and --duration must be positive")
    program = load_program(args.program)
    agent = pick_agent(program.agents, args.agent)
    inputs = _read_inputs(args, agent)
    offsets_s = poisson_offsets_s(args.rate, args.duration, seed=args.seed)
    config = _engine_config(args)
    _check_feasible(agent, config, args)

    async def work(runtime: Any) -> list[ProgramResult]:
        with console.status(f"{len(offsets_s)} instances of {agent.name} at {args.rate:g}/s"):
            return await run_load(runtime, agent, inputs, offsets_s)

    results = anyio.run(_with_runtime, config, program, args, work, [agent])
    summary = summarize(results)
    stdout.print(stage_summary_table([rec for r in results for rec in r.stages]))
    stdout.print(
        f"{summary['finished']}/{summary['programs']} finished; stage attainment "
        f"{summary['attainment']:.1%}; e2e p50 {summary['e2e_p50_ms'] or 0:,.0f} ms, "
        f"p99 {summary['e2e_p99_ms'] or 0:,.0f} ms; {summary['tool_calls']} tool calls"
        + (f", p50 {summary['tool_latency_p50_ms']:,.1f} ms" if summary["tool_calls"] else "")
    )
    if args.json is not None:
        _write_json(args.json, {"summary": summary, **_records(results)})
    return EXIT_OK


def _ms_or_slowdown(value: str) -> float | str:
    """A command-line budget: a number of milliseconds, else kept as text ("5x")."""
    try:
        return float(value)
    except ValueError:
        return value


def _cmd_serve(args: argparse.Namespace) -> int:
    from agentflow.metrics.prometheus import ServingMetrics
    from agentflow.serving import CompletionService, ServeDefaults, create_app
    from tools.serving import serve_app

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0-65535, got {args.port}")
    try:
        defaults = ServeDefaults(
            ttft=_ms_or_slowdown(args.default_ttft),
            tpot=_ms_or_slowdown(args.default_tpot),
            max_tokens=args.default_max_tokens,
        )
    except ValueError as exc:
        raise ConfigError(f"serve defaults: {exc}") from exc
    program = (
        load_program(args.program)
        if args.program is not None
        else LoadedProgram(agents=[], tool_client=None)
    )
    config = _engine_config(args)
    for agent in program.agents:
        _check_feasible(agent, config, args)
    model_name = args.served_model_name or config.model.name

    async def work(runtime: Any) -> list[ProgramResult]:
        service = CompletionService(
            runtime.engine,
            model_name=model_name,
            defaults=defaults,
            metrics=ServingMetrics(),
            max_model_len=getattr(config, "max_model_len", None),
            observers=runtime.observers,
        )
        app = create_app(service, runtime, program.agents, api_key=args.api_key or None)
        console.print(f"serving {model_name} at http://{args.host}:{args.port}/v1", soft_wrap=True)
        await serve_app(app, host=args.host, port=args.port, log_level="warning")
        return []

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C or SIGTERM: the normal way to stop
        anyio.run(_with_runtime, config, program, args, work, program.agents)
    return EXIT_OK


def _cmd_graph(args: argparse.Namespace) -> int:
    from agentflow.program.render import describe, to_dot, write_png

    agent = pick_agent(load_program(args.program).agents, args.agent)
    stdout.print(describe(agent), highlight=False, markup=False)
    if args.dot is not None:
        args.dot.write_text(to_dot(agent))
    if args.png is not None:
        write_png(agent, args.png)
    return EXIT_OK


def _make_engine(config: Any, args: argparse.Namespace) -> Any:
    """The engine the command line asks for.

    The real engine, or the simulator in paced real time with the same policy name; with
    `--replicas` above 1 (or `--ray-address`), a Ray pool of them behind the SLO-aware router.
    """
    if args.replicas < 1:
        raise ConfigError(f"--replicas must be ≥ 1, got {args.replicas}")
    if args.replicas > 1 or args.ray_address:
        from agentflow.cluster import Pool, PoolConfig, SimSpec, VLLMSpec

        policy = {"fcfs": "vllm", "edf": "vllm"}.get(config.policy, config.policy)
        spec = (
            VLLMSpec(config=config)
            if args.backend == "vllm"
            else SimSpec(profile=args.sim_profile, policy=policy)
        )
        pool_config = PoolConfig(
            num_replicas=args.replicas, routing=args.routing, ray_address=args.ray_address
        )
        return Pool(spec, pool_config)
    if args.backend == "vllm":
        from agentflow.engine.vllm import VLLMEngine

        return VLLMEngine(config)
    from agentflow.engine.sim.clock import PacedClock
    from agentflow.engine.sim.engine import SimEngine, SimEngineConfig
    from agentflow.engine.sim.profiles import get_profile

    policy = {"fcfs": "vllm", "edf": "vllm"}.get(config.policy, config.policy)
    return SimEngine(
        get_profile(args.sim_profile), SimEngineConfig(policy=policy), clock=PacedClock()
    )


def _check_feasible(agent: Agent, config: Any, args: argparse.Namespace) -> None:
    """Validation against the serving engine's step-time model, before anything starts."""
    from agentflow.program.feasibility import check_feasible

    if args.backend == "sim":
        from agentflow.engine.sim.profiles import get_profile

        predictor = get_profile(args.sim_profile).predictor()
    else:
        from agentflow.engine.vllm.profile_store import load_profile
        from agentflow.planner import StepTimePredictor

        predictor = load_profile(config.model, config.dtype) or StepTimePredictor.default_cpu()
    check_feasible(agent, predictor)


def _warn_infeasible(agents: Sequence[Agent], engine: Any) -> None:
    """Warn of absolute budgets the started engine cannot meet even when idle.

    The check before start uses the cached `agentflow profile` fit, or without one the
    packaged profile of another machine; a started vLLM engine has timed itself (its
    `measure_speed`), so this is where a budget set for a faster machine shows. A warning, not
    a refusal: a shared machine's speed moves, and the run reports every miss anyway.
    """
    from agentflow.program.feasibility import infeasible_budgets

    shortest_prefill_ms = engine.isolated_prefill_ms(1)
    for agent in agents:
        for problem in infeasible_budgets(agent, engine.lone_decode_ms, shortest_prefill_ms):
            console.print(
                f"agentflow: warning: {problem} (measured on this engine): it will be missed;"
                ' a relative budget ("3x") follows the engine',
                style="yellow",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )


async def _with_runtime(
    config: Any,
    program: LoadedProgram,
    args: argparse.Namespace,
    work: Any,
    agents: Sequence[Agent],
) -> list[ProgramResult]:
    """Start the engine (and the program's tool client), run `work(runtime)`, stop both.

    Once the engine runs, `agents`' absolute budgets are checked again against its own
    step times (see `_warn_infeasible`). The engine is stopped in a shielded scope: on Ctrl-C
    or an error its processes still go.
    """
    from agentflow.runtime import Runtime

    with contextlib.ExitStack() as tracing:
        # Before the engine starts: a bad tracing setting fails in a second, not after a load.
        endpoint = getattr(args, "otlp_traces_endpoint", None)
        observers = [tracing.enter_context(_program_tracer(endpoint))] if endpoint else []
        engine = _make_engine(config, args)
        try:
            label = f"{engine.name} x{args.replicas}" if args.replicas > 1 else engine.name
            with console.status(f"starting {label} ({config.model.name}, {config.policy})"):
                await engine.start()
            _warn_infeasible(agents, engine)
            async with contextlib.AsyncExitStack() as stack:
                tools = None
                if program.tool_client is not None:
                    tools = await stack.enter_async_context(program.tool_client())
                ignore_eos = getattr(args, "ignore_eos", False)
                runtime = Runtime(engine, ignore_eos=ignore_eos, tools=tools, observers=observers)
                return await work(runtime)  # type: ignore[no-any-return]
        finally:
            with anyio.CancelScope(shield=True):
                await engine.shutdown()


@contextlib.contextmanager
def _program_tracer(endpoint: str) -> Iterator[Any]:
    """A runtime observer exporting spans to `--otlp-traces-endpoint`; flushed on exit."""
    from agentflow.metrics.tracing import ProgramTracer, otlp_tracer_provider

    try:
        provider = otlp_tracer_provider(endpoint)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        yield ProgramTracer(provider.get_tracer("agentflow"))
    finally:
        provider.shutdown()


def _report(
    results: list[ProgramResult], args: argparse.Namespace, *, show_outputs: bool = True
) -> None:
    records = [rec for result in results for rec in result.stages]
    for result in results if show_outputs and len(results) <= 4 else []:
        if result.status == ProgramStatus.FINISHED:
            stdout.print(f"[bold]{result.program_id}[/]: {result.output}")
    for result in results:
        if result.status != ProgramStatus.FINISHED:
            line = Text(f"{result.program_id} {result.status}: ", style="red")
            console.print(line + Text(str(result.error)), soft_wrap=True)
    if len(records) <= _MAX_ROWS_PER_CALL:
        stdout.print(stage_table(records))
    else:
        stdout.print(stage_summary_table(records))
    finished = sum(r.status == ProgramStatus.FINISHED for r in results)
    met = sum(r.slo_met for r in records)
    stdout.print(
        f"{finished}/{len(results)} programs finished; {met}/{len(records)} stages met SLO"
    )


def _records(results: list[ProgramResult]) -> dict[str, Any]:
    return {
        "stages": [rec.to_json() for result in results for rec in result.stages],
        "tools": [call.to_json() for result in results for call in result.tools],
    }


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))


_COMMANDS = {
    "run": _cmd_run,
    "bench": _cmd_bench,
    "graph": _cmd_graph,
    "serve": _cmd_serve,
    "profile": _cmd_profile,
    "models": _cmd_models,
}


if __name__ == "__main__":
    sys.exit(main())
