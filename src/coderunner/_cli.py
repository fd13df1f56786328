"""The `coderunner` command: a thin adapter over the Python API.

`cli_logic(argv) -> int` is the testable entry point; exit codes: 0 ok, 1 the snippet
did not produce a valid result (or a check failed), 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pydantic

from ._cli_common import (
    EXIT_NOT_OK,
    EXIT_OK,
    EXIT_USAGE,
    EXTENSIONS,
    Parser,
    UsageError,
    add_input_flags,
    add_secret_flags,
    add_settings_flags,
    parse_inputs,
    parse_secrets,
    read_schema,
    settings_from,
)
from ._cli_snippets import SNIPPET_COMMANDS, add_snippet_commands
from ._errors import CodeRunnerError, ExamplesFailed, InvalidRequest, NotFound
from ._frontend import validation_message
from ._models import ExecutionRequest, ExecutionResult, Language
from ._settings import ServerOptions, Settings


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="coderunner",
        description="Run untrusted Python, JavaScript and TypeScript snippets in a jail; get "
        "JSON back.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run one snippet and print its ExecutionResult as JSON",
        description="Run one snippet and print its ExecutionResult as JSON. Exit 0 when ok, "
        "1 when not ok, 2 on a usage error.",
    )
    run.add_argument(
        "file", nargs="?", help="the snippet file (.py, .js, .mjs, .ts, .mts); - for stdin"
    )
    run.add_argument("-c", "--code", help="the snippet as a string")
    run.add_argument(
        "-l",
        "--language",
        choices=[lang.value for lang in Language],
        help="default: from the file extension",
    )
    add_input_flags(run)
    add_secret_flags(run)

    doctor = sub.add_parser(
        "doctor",
        help="show each isolation layer and whether it is active",
        description="Check each isolation layer; exit 1 when snippets cannot be isolated.",
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")

    serve = sub.add_parser(
        "serve",
        help="start the HTTP API (and MCP at /mcp)",
        description="Start the HTTP API, with the MCP server at /mcp.",
    )
    serve.add_argument("--host", help="address to bind (default 127.0.0.1; env CODERUNNER_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8000; env CODERUNNER_PORT)")
    serve.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="require 'Authorization: Bearer KEY'; repeatable "
        "(env CODERUNNER_API_KEYS, comma-separated)",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.add_argument(
        "--log-inputs",
        action="store_true",
        help="log each execution's code and inputs (DEBUG ONLY: they may hold secrets)",
    )
    add_settings_flags(serve)

    mcp = sub.add_parser(
        "mcp",
        help="run the MCP server on stdio",
        description="Run the MCP server (tools execute-python, execute-javascript and "
        "execute-typescript) on stdin/stdout.",
    )
    add_settings_flags(mcp)

    agent = sub.add_parser(
        "agent",
        help="Agent Mode: a model writes the snippet for GOAL, the sandbox runs it",
        description="Agent Mode: a model behind an OpenAI-compatible endpoint writes a "
        "function-style snippet for GOAL; it runs on the real inputs until the result "
        "validates or attempts run out. Prints the agent answer as JSON; exit 0 when ok.",
    )
    agent.add_argument("goal", help="what the snippet must do")
    agent.add_argument(
        "-l", "--language", choices=[lang.value for lang in Language], default="python"
    )
    add_input_flags(agent)
    add_secret_flags(agent)
    agent.add_argument(
        "--save-as",
        metavar="NAME",
        help="store the final snippet in the library under NAME (goal as its description, "
        "the run as its first example)",
    )
    agent.add_argument("--max-attempts", type=int, default=3, help="default 3")
    agent.add_argument("--llm-base-url", help="env CODERUNNER_LLM_BASE_URL")
    agent.add_argument("--llm-api-key", help="env CODERUNNER_LLM_API_KEY")
    agent.add_argument("--llm-model", help="env CODERUNNER_LLM_MODEL")

    bench = sub.add_parser(
        "bench",
        help="measure latency and throughput against naive baselines",
        description="Benchmark warm executions against a process-per-run baseline.",
    )
    bench.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    bench.add_argument("--json", metavar="FILE", help="also write the numbers to FILE")
    bench.add_argument("--port", type=int, default=0, help="port of the HTTP server to start")
    bench.add_argument(
        "--packages",
        action="store_true",
        help="also measure Python with python-dateutil and pandas preloaded (installs them "
        "first, from PyPI, into <data dir>/bench-packages)",
    )

    packages = sub.add_parser(
        "packages",
        help="the vetted packages snippets may import: sync, list",
        description="The vetted third-party packages of python_packages and "
        "javascript_packages, installed into the data directory ahead of time.",
    )
    verbs = packages.add_subparsers(dest="packages_command", metavar="VERB", required=True)
    sync = verbs.add_parser(
        "sync",
        help="install the packages the settings name (when their lists changed)",
        description="Install python_packages (pip, wheels only) and javascript_packages "
        "(npm, no install scripts) into the data directory, each when its list changed "
        "since the last sync (every one with --force), and print what is installed (JSON). "
        "A server also syncs at start-up; restart running servers after a sync.",
    )
    sync.add_argument("--force", action="store_true", help="reinstall even if unchanged")
    add_settings_flags(sync)
    listing = verbs.add_parser(
        "list",
        help="print the runtimes and the installed packages (JSON)",
        description="Print what GET /v1/runtimes answers: the runtimes and the installed "
        "packages. Exit 1 when the settings name packages not synced yet.",
    )
    add_settings_flags(listing)

    add_snippet_commands(sub)
    return parser


def _snippet(args: argparse.Namespace) -> tuple[str, Language]:
    if (args.file is None) == (args.code is None):
        raise UsageError("coderunner run: give a FILE or -c CODE (exactly one)")
    if args.code is not None:
        code, suffix = args.code, ""
    elif args.file == "-":
        code, suffix = sys.stdin.read(), ""
    else:
        try:
            code = Path(args.file).read_text()
        except OSError as exc:
            raise UsageError(f"coderunner run: cannot read {args.file}: {exc.strerror}") from None
        suffix = Path(args.file).suffix
    if args.language:
        return code, Language(args.language)
    if suffix in EXTENSIONS:
        return code, EXTENSIONS[suffix]
    if args.code is not None or args.file == "-":
        raise UsageError("coderunner run: say which language with -l python|javascript|typescript")
    raise UsageError(
        f"coderunner run: cannot tell the language of {args.file!r} from its extension; "
        "use -l python|javascript|typescript"
    )


async def _run_one(request: ExecutionRequest) -> ExecutionResult:
    from ._engine import Engine

    settings = Settings.from_env(python_pool_size=1, javascript_pool_size=1)
    async with Engine(settings, warm=(request.language,)) as engine:
        result = await engine.execute(request)
    return result


def cmd_run(args: argparse.Namespace) -> int:
    code, language = _snippet(args)
    try:
        request = ExecutionRequest(
            language=language,
            code=code,
            inputs=parse_inputs(args.input, args.inputs),
            secrets=parse_secrets(args.secret, args.secrets),
            timeout_ms=args.timeout_ms,
            memory_mb=args.memory_mb,
            output_schema=read_schema(args.schema),
        )
    except pydantic.ValidationError as exc:
        raise UsageError(f"coderunner run: {validation_message(exc.errors())}") from None
    result = asyncio.run(_run_one(request))
    print(result.model_dump_json(indent=2))
    return EXIT_OK if result.ok else EXIT_NOT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from ._doctor import run_checks

    report = run_checks()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.render())
    return EXIT_OK if report.ok else EXIT_NOT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from ._launch import serve

    settings = settings_from(args)
    options = ServerOptions.from_env(host=args.host, port=args.port)
    serve(
        settings,
        host=options.host,
        port=options.port,
        api_keys=[*args.api_key, *options.api_keys],
        log_level=args.log_level,
        log_inputs=args.log_inputs,
    )
    return EXIT_OK


def cmd_mcp(args: argparse.Namespace) -> int:
    from ._mcp import run_stdio

    run_stdio(settings_from(args))
    return EXIT_OK


def cmd_agent(args: argparse.Namespace) -> int:
    """`coderunner agent GOAL ...`: print the AgentResult as JSON; exit 0 ok, 1 not, 2 usage."""
    from ._agent import AgentNotConfigured, AgentRequest, LLMConfig

    llm = LLMConfig.from_env(
        base_url=args.llm_base_url, api_key=args.llm_api_key, model=args.llm_model
    )
    missing = llm.missing()
    if missing:
        flags = " and ".join(
            "--" + m.removeprefix("CODERUNNER_").lower().replace("_", "-") for m in missing
        )
        raise UsageError(f"coderunner agent: {AgentNotConfigured(missing)} (or pass {flags})")
    settings = Settings.from_env(python_pool_size=1, javascript_pool_size=1)
    try:
        request = AgentRequest(
            goal=args.goal,
            language=Language(args.language),
            inputs=parse_inputs(args.input, args.inputs),
            secrets=parse_secrets(args.secret, args.secrets),
            save_as=args.save_as,
            output_schema=read_schema(args.schema),
            max_attempts=args.max_attempts,
            timeout_ms=args.timeout_ms,
            memory_mb=args.memory_mb,
        )
    except pydantic.ValidationError as exc:
        raise UsageError(f"coderunner agent: {validation_message(exc.errors())}") from None
    result = asyncio.run(_run_agent_once(settings, request, llm))
    print(result.model_dump_json(indent=2))
    return EXIT_OK if result.ok else EXIT_NOT_OK


async def _run_agent_once(settings: Settings, request: Any, llm: Any) -> Any:
    from ._agent import run_agent
    from ._engine import Engine
    from ._library import Library

    async with Engine(settings, warm=(request.language,)) as engine:
        answer = await run_agent(engine, request, llm)
        if request.save_as and answer.ok:
            async with Library(engine, settings) as library:
                await library.save_agent_result(request, answer)
        return answer


def cmd_packages(args: argparse.Namespace) -> int:
    """`coderunner packages sync|list`: print the runtimes and packages as JSON."""
    from ._packages import installed, runtimes, sync

    settings = settings_from(args)
    if args.packages_command == "sync":
        if not (settings.python_packages.strip() or settings.javascript_packages.strip()):
            print("coderunner packages sync: python_packages and javascript_packages are "
                  "empty: nothing to install", file=sys.stderr)  # fmt: skip
        sync(settings, force=args.force, progress=lambda text: print(text, file=sys.stderr))
        if settings.javascript_isolation == "isolate":  # its runtime, fetched ahead too
            from ._runtimes.workerd import install_workerd
            from ._settings import resolved_data_dir

            print(f"workerd: {install_workerd(resolved_data_dir(settings))}", file=sys.stderr)
    print(runtimes(installed(settings)).model_dump_json(indent=2))
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from ._bench import main_bench

    return main_bench(args)


COMMANDS = {
    "run": cmd_run,
    "doctor": cmd_doctor,
    "serve": cmd_serve,
    "mcp": cmd_mcp,
    "agent": cmd_agent,
    "bench": cmd_bench,
    "packages": cmd_packages,
    **SNIPPET_COMMANDS,
}


def cli_logic(argv: list[str] | None = None) -> int:
    """Parse argv, run the command, return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except ExamplesFailed as exc:  # the command was right; the snippet did not pass
        print(f"coderunner: {exc}", file=sys.stderr)
        return EXIT_NOT_OK
    except InvalidRequest as exc:
        print(f"coderunner: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NotFound as exc:
        print(f"coderunner: {exc}", file=sys.stderr)
        return EXIT_NOT_OK
    except CodeRunnerError as exc:
        print(f"coderunner: {exc}", file=sys.stderr)
        return EXIT_NOT_OK
