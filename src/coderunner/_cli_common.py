"""What every `coderunner` command shares: exit codes, usage errors, the settings and
input flags, and reading JSON files and secrets from the command line."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ._models import Language
from ._settings import Settings, describe_settings

EXIT_OK, EXIT_NOT_OK, EXIT_USAGE = 0, 1, 2

EXTENSIONS = {
    ".py": Language.PYTHON,
    ".js": Language.JAVASCRIPT,
    ".mjs": Language.JAVASCRIPT,
    ".ts": Language.TYPESCRIPT,
    ".mts": Language.TYPESCRIPT,
}


class UsageError(Exception):
    """The command line is wrong; exit 2 with this message."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def add_settings_flags(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """The settings as flags.  `suppress`: for a sub-command's own copy, so that a flag
    given after the verb counts and one given before it is not reset."""
    group = parser.add_argument_group(
        "settings", "each also read from CODERUNNER_<NAME> (e.g. CODERUNNER_MAX_TIMEOUT_MS)"
    )
    for name, default, help_text in describe_settings():
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=f"setting_{name}",
            type=type(default),
            metavar="TEXT" if isinstance(default, str) else "N",
            help=f"{help_text} (default: {default})",
            default=argparse.SUPPRESS if suppress else None,
        )


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_")
    }
    return Settings.from_env(**overrides)


def add_input_flags(parser: argparse.ArgumentParser, *, schema: bool = True) -> None:
    parser.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="an input, its value as JSON (quote strings: -i name='\"Ada\"'); repeatable",
    )
    parser.add_argument("--inputs", metavar="FILE.json", help="a JSON object of inputs")
    parser.add_argument("--timeout-ms", type=int, help="wall-clock limit (default 5000)")
    parser.add_argument("--memory-mb", type=int, help="memory limit (default 256)")
    if schema:
        parser.add_argument("--schema", metavar="SCHEMA.json", help="output_schema (JSON Schema)")


def _read_json_object(flag: str, path: str, what: str) -> dict[str, Any]:
    try:
        loaded = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{flag}: {path} is not JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"{flag}: {path} must hold {what}")
    return loaded


def parse_inputs(pairs: list[str], inputs_file: str | None) -> dict[str, Any]:
    """Inputs from --inputs FILE.json, then each -i NAME=JSON on top."""
    inputs: dict[str, Any] = {}
    if inputs_file:
        inputs.update(_read_json_object("--inputs", inputs_file, "a JSON object of inputs"))
    for pair in pairs:
        name, eq, raw = pair.partition("=")
        if not eq or not name:
            raise UsageError(f"-i {pair!r}: expected NAME=JSON, e.g. -i x=6")
        try:
            inputs[name] = json.loads(raw)
        except ValueError:
            raise UsageError(
                f"-i {pair!r}: {raw!r} is not JSON; quote strings, e.g. -i {name}='\"{raw}\"'"
            ) from None
    return inputs


def read_schema(path: str | None, flag: str = "--schema") -> dict[str, Any] | None:
    """The JSON Schema in the file `flag` names, if given."""
    return _read_json_object(flag, path, "a JSON Schema object") if path else None


def add_secret_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="a secret, bound like an input but never logged or stored and masked as *** "
        "in the output; without =VALUE it is read from the environment variable NAME "
        "(keeps it out of your shell history); repeatable",
    )
    parser.add_argument(
        "--secrets", metavar="FILE.json", help="a JSON object of secrets (string values)"
    )


def parse_secrets(pairs: list[str], secrets_file: str | None) -> dict[str, str]:
    """Secrets from --secrets FILE.json, then each --secret NAME[=VALUE] on top."""
    secrets: dict[str, str] = {}
    if secrets_file:
        loaded = _read_json_object("--secrets", secrets_file, "a JSON object of secrets")
        for name, value in loaded.items():
            if not isinstance(value, str):
                raise UsageError(f"--secrets: the value of {name!r} must be a string")
            secrets[name] = value
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not name:
            # Never echo the flag: what follows = is a secret's value.
            raise UsageError("--secret: a NAME is missing; expected NAME=VALUE or NAME")
        if not eq:
            if name not in os.environ:
                raise UsageError(
                    f"--secret {name}: no =VALUE and no environment variable {name} to read"
                )
            value = os.environ[name]
        secrets[name] = value
    return secrets
