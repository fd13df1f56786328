"""docs/reference.md stays true to the code, and the docs' links stay whole.

Users of the published project read docs/reference.md, never the code: every setting
(with its environment variable, flag and default), error type, model field, command,
flag and HTTP route must be in it, and nothing it lists as a setting, field or error
type may have disappeared from the code.  README.md and docs/*.md must not link outside
the repository, and every relative link (and #anchor) must resolve.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pydantic
import pytest

import coderunner
from coderunner._cli import COMMANDS, build_parser
from coderunner._settings import describe_settings

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_PATH = ROOT / "docs" / "reference.md"
REFERENCE = REFERENCE_PATH.read_text()
WHERE = "docs/reference.md"

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


# -- reading Markdown --------------------------------------------------------------------


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text, with the lines of fenced code blocks blanked."""
    out: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        marker = _FENCE.match(line)
        if fence is None and marker:
            fence = marker.group(1)
            out.append("")
        elif fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = None
            out.append("")
        else:
            out.append(line)
    return out


def headings(text: str) -> Iterator[tuple[int, int, str]]:
    """(line index, level, title) of every heading outside code blocks."""
    for index, line in enumerate(prose_lines(text)):
        match = _HEADING.match(line)
        if match:
            yield index, len(match.group(1)), match.group(2)


def github_slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link counts as its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a Markdown text (repeated slugs get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, _, title in headings(text):
        slug = github_slug(title)
        count = seen.get(slug, 0)
        out.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    return out


def section(marker: str, text: str = REFERENCE) -> str:
    """The text between the heading `marker` (else the first heading containing it) and
    the next heading."""
    lines = text.splitlines()
    found = [(index, title) for index, _, title in headings(text)]
    exact = [p for p, (_, title) in enumerate(found) if title == marker]
    partial = [p for p, (_, title) in enumerate(found) if marker in title]
    for position in exact or partial[:1]:
        end = found[position + 1][0] if position + 1 < len(found) else len(lines)
        return "\n".join(lines[found[position][0] + 1 : end])
    pytest.fail(f"{WHERE} has no heading containing {marker!r}")


def tables(text: str) -> list[list[list[str]]]:
    """The Markdown tables of a text: each a list of rows (the header first) of cells."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*prose_lines(text), ""]:
        stripped = line.strip()
        if stripped.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", stripped.strip("|"))]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def table_with(header: str, text: str, where: str) -> list[list[str]]:
    """The first table of `text` whose header row has a column named `header`."""
    for table in tables(text):
        if header in table[0]:
            return table
    pytest.fail(f"{WHERE}: {where} has no table with a {header!r} column")


def code_names(cell: str) -> list[str]:
    """The `code` spans of a table cell, e.g. ['ok'] for '`ok`'."""
    return re.findall(r"`([^`]+)`", cell)


def mentions(text: str, token: str) -> bool:
    """Whether `token` (a flag, a name) occurs in text as a whole word."""
    return re.search(rf"(?<![\w-]){re.escape(token)}(?![\w-])", text) is not None


# -- no link to the unpublished contract, no broken link ----------------------------------


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*") if p.is_file())]


def test_docs_do_not_point_at_the_unpublished_contract() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in doc_files()
        if "../shared" in path.read_text(errors="replace")
    ]
    assert not offenders, (
        f"these files mention ../shared, which users of the published project never see: "
        f"{offenders}; link to docs/reference.md instead"
    )


_INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")


def link_targets(text: str) -> Iterator[tuple[int, str]]:
    """(line number, target) of every Markdown link outside code."""
    for number, line in enumerate(prose_lines(text), start=1):
        line = re.sub(r"(`+)(?:(?!\1).)+\1", "", line)  # inline code spans are not links
        for match in _INLINE_LINK.finditer(line):
            yield number, match.group(1)
        match = _REFERENCE_LINK.match(line)
        if match:
            yield number, match.group(1)


def test_every_relative_link_resolves() -> None:
    broken: list[str] = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for number, target in link_targets(text):
            if not target or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//", target):
                continue  # an absolute URL (https:, mailto:) is not checked here
            where = f"{path.relative_to(ROOT)}:{number}: link {target!r}"
            file_part, _, anchor = target.partition("#")
            if not file_part:
                linked = path
            elif file_part.startswith("/"):
                linked = ROOT / unquote(file_part).lstrip("/")
            else:
                linked = (path.parent / unquote(file_part)).resolve()
            if not linked.resolve().is_relative_to(ROOT):
                broken.append(f"{where} points outside the repository")
                continue
            if not linked.exists():
                broken.append(f"{where}: {linked.relative_to(ROOT)} does not exist")
                continue
            if anchor and linked.suffix == ".md":
                if unquote(anchor).lower() not in anchors(linked.read_text()):
                    broken.append(
                        f"{where}: {linked.relative_to(ROOT)} has no heading with the "
                        f"anchor #{anchor}"
                    )
    assert not broken, "broken links:\n" + "\n".join(broken)


# -- settings --------------------------------------------------------------------------


def _defaults_with_cores(cores: int) -> dict[str, object]:
    """The setting defaults as a host with `cores` CPUs would see them."""
    code = (
        "import json, os\n"
        f"os.cpu_count = os.process_cpu_count = lambda: {cores}\n"
        f"os.sched_getaffinity = lambda pid: set(range({cores}))\n"
        "from coderunner._settings import describe_settings\n"
        "print(json.dumps({name: default for name, default, _ in describe_settings()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def default_renderings(value: object) -> set[str]:
    """Ways the reference may write a default: 1048576, 1_048_576, 1,048,576, 1 MiB."""
    if isinstance(value, bool):
        return {str(value).lower()}
    if isinstance(value, float) and value.is_integer():
        return {str(value), *default_renderings(int(value))}
    out = {str(value)}
    if isinstance(value, int):
        out |= {f"{value:_}", f"{value:,}"}
        for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value >= size and value % size == 0:
                out.add(f"{value // size} {unit}")
    return out


def shows_default(cell: str, value: object) -> bool:
    return any(
        re.search(rf"(?<![\d.]){re.escape(r)}(?!\d|\.\d)", cell) for r in default_renderings(value)
    )


def test_every_setting_is_documented_with_its_variable_flag_and_default() -> None:
    text = section("Settings")
    table = table_with("default", text, "the Settings section")
    header = table[0]
    column = header.index("default")
    rows = {names[0]: row for row in table[1:] if (names := code_names(row[0]))}
    settings = describe_settings()
    few, many = _defaults_with_cores(1), _defaults_with_cores(64)
    problems: list[str] = []
    for name, default, _ in settings:
        row = rows.get(name)
        if row is None:
            problems.append(f"setting {name!r} has no row in the Settings table")
            continue
        line = " | ".join(row)
        env = f"CODERUNNER_{name.upper()}"
        if f"`{env}`" not in line:
            problems.append(f"setting {name!r}: its row does not name `{env}`")
        flag = "--" + name.replace("_", "-")
        if not mentions(line, flag):
            problems.append(f"setting {name!r}: its row does not name the flag {flag}")
        cell = row[column] if column < len(row) else ""
        if few.get(name) != many.get(name):
            if "core" not in cell:
                problems.append(
                    f"setting {name!r}: its default depends on the host's cores "
                    f"({few.get(name)} with 1 core, {many.get(name)} with 64); the default "
                    f"column must say how (it says {cell!r})"
                )
        elif not shows_default(cell, default):
            problems.append(
                f"setting {name!r}: the default column says {cell!r}, the code's default "
                f"is {default!r}"
            )
    unknown = sorted(set(rows) - {name for name, _, _ in settings})
    if unknown:
        problems.append(f"the Settings table lists settings the code does not have: {unknown}")
    assert not problems, f"{WHERE} and the settings disagree:\n" + "\n".join(problems)


# -- results, errors and requests ---------------------------------------------------------


def test_every_error_type_is_documented() -> None:
    table = table_with("type", section("Error types"), "the 'Error types' section")
    documented = {names[0] for row in table[1:] if (names := code_names(row[0]))}
    actual = {error_type.value for error_type in coderunner.ErrorType}
    assert not actual - documented, (
        f"{WHERE}: error types missing from the 'Error types' table: {sorted(actual - documented)}"
    )
    assert not documented - actual, (
        f"{WHERE}: the 'Error types' table lists types the code does not have: "
        f"{sorted(documented - actual)}"
    )


@pytest.mark.parametrize(
    "model", [coderunner.ExecutionRequest, coderunner.ExecutionResult, coderunner.ErrorDetail]
)
def test_every_model_field_is_documented(model: type[pydantic.BaseModel]) -> None:
    name = model.__name__
    table = table_with("field", section(f"`{name}`"), f"the section of `{name}`")
    documented = {names[0] for row in table[1:] if (names := code_names(row[0]))}
    fields = set(model.model_fields)
    assert not fields - documented, (
        f"{WHERE}: fields of {name} missing from its table: {sorted(fields - documented)}"
    )
    unknown = documented - fields
    assert not unknown, f"{WHERE}: the {name} table lists fields it does not have: {unknown}"


# -- the CLI ---------------------------------------------------------------------------


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    pytest.fail("coderunner's parser has no subcommands")


def test_every_command_and_flag_is_documented() -> None:
    commands = _subcommands()
    assert set(commands) == set(COMMANDS), (
        f"the parser's commands {sorted(commands)} differ from COMMANDS {sorted(COMMANDS)}"
    )
    setting_flags = {"--" + name.replace("_", "-") for name, _, _ in describe_settings()}
    settings_text = section("Settings")
    problems: list[str] = []
    for command, parser in commands.items():
        if not mentions(REFERENCE, f"coderunner {command}"):
            problems.append(f"command `coderunner {command}` is not mentioned")
            continue
        text = section(f"`coderunner {command}`")
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not action.option_strings:  # a positional argument: FILE, GOAL
                label = action.metavar if isinstance(action.metavar, str) else action.dest
                if not mentions(text, label.upper()):
                    problems.append(f"`coderunner {command}`: argument {label.upper()}")
            for option in action.option_strings:
                if mentions(text, option):
                    continue
                if option in setting_flags and "(#settings)" in text:
                    if not mentions(settings_text, option):
                        problems.append(f"setting flag {option} is not in the Settings section")
                    continue
                problems.append(f"`coderunner {command}`: option {option}")
            for choice in action.choices or ():
                if not mentions(text, str(choice)):
                    problems.append(f"`coderunner {command}`: value {choice!r} of {action.dest}")
    assert not problems, (
        f"{WHERE} does not document (in the section of each command):\n" + "\n".join(problems)
    )


# -- HTTP ------------------------------------------------------------------------------


def test_every_http_route_and_error_status_is_documented() -> None:
    from coderunner._http import create_app

    app = create_app(coderunner.Settings())
    paths = app.openapi()["paths"]
    errors_table = table_with("status", section("HTTP errors"), "the 'HTTP errors' section")
    statuses = {row[0] for row in errors_table[1:]}
    problems: list[str] = []
    for path, operations in paths.items():
        for method, operation in operations.items():
            if f"`{method.upper()} {path}`" not in REFERENCE:
                problems.append(f"route `{method.upper()} {path}`")
            for status in operation.get("responses", {}):
                if not str(status).startswith("2") and str(status) not in statuses:
                    problems.append(
                        f"status {status} of {method.upper()} {path} in the HTTP errors table"
                    )
    for route in app.routes:  # also the routes outside OpenAPI: /mcp, /docs, /openapi.json
        path = getattr(route, "path", None)
        if path and not re.search(rf"`(?:[A-Z]+ )?{re.escape(path)}`", REFERENCE):
            problems.append(f"route {path}")
    assert not problems, f"{WHERE} does not document:\n" + "\n".join(sorted(set(problems)))
