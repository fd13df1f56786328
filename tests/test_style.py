"""The code base stays ruff-clean and the public surface stays complete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import coderunner

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_clean() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "src", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_all_is_sorted_and_complete() -> None:
    public = {n for n in dir(coderunner) if not n.startswith("_")} - {
        # submodules imported by the package itself
        n
        for n in dir(coderunner)
        if type(getattr(coderunner, n)).__name__ == "module"
    }
    assert coderunner.__all__ == sorted(coderunner.__all__, key=str.casefold) or (
        coderunner.__all__ == sorted(coderunner.__all__)
    )
    assert public <= set(coderunner.__all__), public - set(coderunner.__all__)
    for name in coderunner.__all__:
        assert getattr(coderunner, name) is not None
        if name != "__version__":
            assert getattr(coderunner, name).__doc__, f"{name} has no docstring"


README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_two_set_up_commands() -> None:
    block = README.split("```sh\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert [line.split("#")[0].strip() for line in block] == ["./run serve", "./run test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./run test" in ci


def test_every_setting_error_type_and_command_is_documented() -> None:
    from coderunner._cli import COMMANDS
    from coderunner._settings import describe_settings

    for name, _, _ in describe_settings():
        assert f"`{name}`" in README, f"setting {name} is not in the README"
    for error_type in coderunner.ErrorType:
        assert f"`{error_type.value}`" in README, f"error type {error_type.value} undocumented"
    for command in COMMANDS:
        assert f"coderunner {command}" in README, f"command {command} undocumented"
