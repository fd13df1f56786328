"""`coderunner snippets ...`, `coderunner history` and `coderunner inspect`: the library
from the command line, working directly on the store the settings name (`--data-dir`,
`--database-url`, or their CODERUNNER_* variables); no server is needed.

Every command prints JSON on stdout; exit 0 when it worked (a run or a test: when it
passed), 1 when not (or the snippet is unknown, or the store is down), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pydantic

from ._cli_common import (
    EXIT_NOT_OK,
    EXIT_OK,
    EXTENSIONS,
    UsageError,
    add_input_flags,
    add_secret_flags,
    add_settings_flags,
    parse_inputs,
    parse_secrets,
    read_schema,
    settings_from,
)
from ._engine import Engine
from ._frontend import validation_message
from ._library import Library
from ._models import ErrorDetail, Example, Language, SnippetSpec

_NAME_AT = re.compile(r"^(?P<name>[^@]+)(?:@(?P<version>\d+))?$")


def add_snippet_commands(sub: Any) -> None:
    """Add `snippets`, `history` and `inspect` to the `coderunner` parser."""
    snippets = sub.add_parser(
        "snippets",
        help="the snippet library: save, list, show, run, test, rm, export, import",
        description="The snippet library, on the store the settings name (no server needed).",
    )
    add_settings_flags(snippets)
    verbs = snippets.add_subparsers(dest="snippets_command", metavar="VERB", required=True)

    save = verbs.add_parser(
        "save",
        help="save FILE as a new version of a library snippet (its examples must pass)",
        description="Save a function-style snippet. Its examples run first; a save whose "
        "examples fail is refused and nothing is stored. Prints the stored version.",
    )
    save.add_argument("file", help="the snippet's code (.py, .js, .mjs, .ts, .mts)")
    save.add_argument("--name", required=True, help="the snippet's name, e.g. normalize-phone")
    save.add_argument("-l", "--language", choices=[lang.value for lang in Language])
    save.add_argument("--description", default=None, help="Markdown text (or --description-file)")
    save.add_argument("--description-file", metavar="FILE.md")
    save.add_argument(
        "--examples",
        metavar="FILE.json",
        help='a JSON list of examples: [{"name": ..., "inputs": {...}, "expected": ...}]',
    )
    save.add_argument("--input-schema", metavar="FILE.json", help="default: inferred from main")
    save.add_argument("--output-schema", metavar="FILE.json")
    save.add_argument("--tag", action="append", default=[], help="a tag; repeatable")

    lst = verbs.add_parser("list", help="the latest version of every snippet")
    lst.add_argument("-q", "--query", help="only snippets with this text in name/description/tags")

    show = verbs.add_parser("show", help="one snippet (NAME or NAME@VERSION)")
    show.add_argument("ref", metavar="NAME[@N]")
    show.add_argument("--versions", action="store_true", help="every version, newest first")

    run = verbs.add_parser(
        "run", help="run a library snippet by name and print its ExecutionResult"
    )
    run.add_argument("ref", metavar="NAME[@N]")
    add_input_flags(run, schema=False)
    add_secret_flags(run)

    test = verbs.add_parser("test", help="run a snippet's examples again")
    test.add_argument("ref", metavar="NAME[@N]")

    rm = verbs.add_parser("rm", help="delete a snippet and all its versions")
    rm.add_argument("name")

    export = verbs.add_parser(
        "export", help="write every snippet as NAME.py|.js + NAME.json into DIR (for git)"
    )
    export.add_argument("directory", metavar="DIR")

    imp = verbs.add_parser("import", help="save every snippet of an exported DIR (all or nothing)")
    imp.add_argument("directory", metavar="DIR")

    for verb in (save, lst, show, run, test, rm, export, imp):
        add_settings_flags(verb, suppress=True)  # also after the verb: snippets list --data-dir

    history = sub.add_parser(
        "history",
        help="recent executions, or one of them with its result",
        description="The execution history, newest first, or one execution by id.",
    )
    history.add_argument("execution_id", nargs="?", help="show this execution")
    history.add_argument("--snippet", help="only this library snippet's runs")
    history.add_argument("--limit", type=int, default=20)
    add_settings_flags(history)

    inspect = sub.add_parser(
        "inspect", help="the parameters and input schema of a snippet's main (not run)"
    )
    inspect.add_argument("file")
    inspect.add_argument("-l", "--language", choices=[lang.value for lang in Language])


def _language_of(path: str, given: str | None) -> Language:
    if given:
        return Language(given)
    suffix = Path(path).suffix
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    raise UsageError(f"cannot tell the language of {path!r}; use -l python|javascript|typescript")


def _read(path: str, flag: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read {path}: {exc.strerror}") from None


def _json_file(path: str, flag: str) -> Any:
    try:
        return json.loads(_read(path, flag))
    except ValueError as exc:
        raise UsageError(f"{flag}: {path} is not JSON: {exc}") from None


def _ref(text: str) -> tuple[str, int | None]:
    match = _NAME_AT.match(text)
    if not match:
        raise UsageError(f"{text!r}: expected NAME or NAME@VERSION, e.g. normalize-phone@2")
    version = match.group("version")
    return match.group("name"), int(version) if version else None


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _with_library(args: argparse.Namespace, work: Callable[[Library], Awaitable[int]]) -> int:
    # Few workers: a command runs a handful of executions at most.
    settings = dataclasses.replace(settings_from(args), python_pool_size=1, javascript_pool_size=1)

    async def main() -> int:
        async with Engine(settings, warm=()) as engine, Library(engine, settings) as library:
            return await work(library)

    return asyncio.run(main())


def cmd_snippets(args: argparse.Namespace) -> int:
    verb = args.snippets_command
    if verb == "save":
        spec = _spec(args)
        return _with_library(args, lambda lib: _save(lib, args.name, spec))
    if verb == "list":
        return _with_library(args, lambda lib: _list(lib, args.query))
    if verb == "show":
        name, version = _ref(args.ref)
        return _with_library(args, lambda lib: _show(lib, name, version, args.versions))
    if verb == "run":
        name, version = _ref(args.ref)
        inputs = parse_inputs(args.input, args.inputs)
        secrets = parse_secrets(args.secret, args.secrets)
        return _with_library(
            args,
            lambda lib: _run(lib, name, version, inputs, secrets, args.timeout_ms, args.memory_mb),
        )
    if verb == "test":
        name, version = _ref(args.ref)
        return _with_library(args, lambda lib: _test(lib, name, version))
    if verb == "rm":
        return _with_library(args, lambda lib: _rm(lib, args.name))
    if verb == "export":
        return _with_library(args, lambda lib: _export(lib, args.directory))
    if verb == "import":
        return _with_library(args, lambda lib: _import(lib, args.directory))
    raise UsageError(f"coderunner snippets: unknown verb {verb!r}")  # argparse prevents it


def _spec(args: argparse.Namespace) -> SnippetSpec:
    code = _read(args.file, "coderunner snippets save")
    description = args.description
    if args.description_file:
        description = _read(args.description_file, "--description-file")
    examples = _json_file(args.examples, "--examples") if args.examples else []
    if not isinstance(examples, list):
        raise UsageError("--examples: the file must hold a JSON list of examples")
    try:
        return SnippetSpec(
            language=_language_of(args.file, args.language),
            code=code,
            description=description or "",
            examples=[Example.model_validate(e) for e in examples],
            tags=args.tag,
            input_schema=read_schema(args.input_schema, "--input-schema"),
            output_schema=read_schema(args.output_schema, "--output-schema"),
        )
    except pydantic.ValidationError as exc:
        raise UsageError(f"coderunner snippets save: {validation_message(exc.errors())}") from None


async def _save(library: Library, name: str, spec: SnippetSpec) -> int:
    snippet, created = await library.save(name, spec)
    _print({**snippet.model_dump(mode="json"), "created": created})
    return EXIT_OK


async def _list(library: Library, query: str | None) -> int:
    _print({"snippets": [s.model_dump(mode="json") for s in await library.search(query)]})
    return EXIT_OK


async def _show(library: Library, name: str, version: int | None, versions: bool) -> int:
    if versions:
        found = await library.versions(name)
        _print({"versions": [s.model_dump(mode="json") for s in found]})
    else:
        _print((await library.get(name, version)).model_dump(mode="json"))
    return EXIT_OK


async def _run(
    library: Library,
    name: str,
    version: int | None,
    inputs: dict[str, Any],
    secrets: dict[str, str],
    timeout_ms: int | None,
    memory_mb: int | None,
) -> int:
    result = await library.run(
        name,
        inputs=inputs,
        secrets=secrets,
        version=version,
        timeout_ms=timeout_ms,
        memory_mb=memory_mb,
        surface="cli",
    )
    print(result.model_dump_json(indent=2))
    return EXIT_OK if result.ok else EXIT_NOT_OK


async def _test(library: Library, name: str, version: int | None) -> int:
    outcomes = await library.test(name, version)
    passed = all(o["ok"] for o in outcomes)
    _print({"name": name, "passed": passed, "examples": outcomes})
    return EXIT_OK if passed else EXIT_NOT_OK


async def _rm(library: Library, name: str) -> int:
    await library.delete(name)
    _print({"deleted": name})
    return EXIT_OK


async def _export(library: Library, directory: str) -> int:
    names = await library.export(directory)
    _print({"exported": names, "directory": directory})
    return EXIT_OK


async def _import(library: Library, directory: str) -> int:
    saved = await library.import_(directory)
    _print(
        {
            "imported": [
                {"name": s.name, "version": s.version, "created": created} for s, created in saved
            ]
        }
    )
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    async def work(library: Library) -> int:
        if args.execution_id:
            record = await library.execution(args.execution_id)
            print(record.model_dump_json(indent=2))
        else:
            found = await library.executions(snippet=args.snippet, limit=args.limit)
            _print({"executions": [e.model_dump(mode="json") for e in found]})
        return EXIT_OK

    return _with_library(args, work)


def cmd_inspect(args: argparse.Namespace) -> int:
    from ._inspect import inspect_snippet

    found = inspect_snippet(
        _read(args.file, "coderunner inspect"), _language_of(args.file, args.language)
    )
    if isinstance(found, ErrorDetail):
        _print({"error": found.model_dump(mode="json")})
        return EXIT_NOT_OK
    _print(found.answer())
    return EXIT_OK


SNIPPET_COMMANDS = {"snippets": cmd_snippets, "history": cmd_history, "inspect": cmd_inspect}
