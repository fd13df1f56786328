"""The vetted packages' import-time code, in the Python fork server: it runs under the
import filter (no program starts, no socket rendezvous, as for a snippet) and must leave
the server as it found it, or the server names the package and refuses to start.

Each case syncs python-dateutil for real (once per module), copies the data directory and
appends hostile code to the copy's `dateutil/__init__.py`, then starts a real engine."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from pathlib import Path

import pytest

import coderunner
from coderunner import _packages
from coderunner._settings import Settings

pytestmark = pytest.mark.timeout(300)

PYTHON_PACKAGES = "python-dateutil==2.9.0.post0"


def settings_for(data_dir: Path) -> Settings:
    return dataclasses.replace(
        Settings(python_pool_size=1, javascript_pool_size=1, python_fork_servers=1),
        data_dir=str(data_dir),
        python_packages=PYTHON_PACKAGES,
    )


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("guard-data")
    _packages.sync(settings_for(data))
    return data


def tampered(synced: Path, tmp_path: Path, code: str) -> Settings:
    data = tmp_path / "data"
    shutil.copytree(synced, data)
    settings = settings_for(data)
    python = _packages.installed(settings).python
    assert python is not None and python.modules == ("dateutil",)
    init = Path(python.dir) / "dateutil" / "__init__.py"
    init.write_text(init.read_text() + "\n" + code + "\n")
    return settings


def execute(settings: Settings, code: str) -> coderunner.ExecutionResult:
    async def main() -> coderunner.ExecutionResult:
        async with coderunner.Engine(settings, warm=()) as engine:
            request = coderunner.ExecutionRequest(language="python", code=code)
            return await engine.execute(request)

    return asyncio.run(main())


def test_a_well_behaved_package_is_preloaded(synced: Path, tmp_path: Path) -> None:
    settings = tampered(synced, tmp_path, "IMPORTED_IN_THE_SERVER = True")
    result = execute(settings, "import dateutil\ndateutil.IMPORTED_IN_THE_SERVER")
    assert result.ok and result.result is True, result


@pytest.mark.parametrize(
    ("code", "changed"),
    [
        # A thread would run on in the server, between and during forks.
        (
            "import threading, time\n"
            "threading.Thread(target=time.sleep, args=(600,), daemon=True).start()",
            "Threads",
        ),
        # A process left behind would outlive executions in the server's jail.
        ("import os, time\nif os.fork() == 0:\n    time.sleep(600)", "processes"),
        # A timer would interrupt the server later, running the package's handler.
        ("import signal\nsignal.setitimer(signal.ITIMER_REAL, 600)", "timers"),
        ("import signal\nsignal.signal(signal.SIGUSR1, lambda *a: None)", "signal handlers"),
    ],
)
def test_a_package_that_changes_the_server_stops_it_starting(
    synced: Path, tmp_path: Path, code: str, changed: str
) -> None:
    result = execute(tampered(synced, tmp_path, code), "1")
    assert not result.ok and result.error is not None, result
    assert result.error.type == coderunner.ErrorType.SANDBOX_ERROR, result.error
    message = result.error.message
    assert "importing the package 'dateutil' changed the fork server" in message, message
    assert changed in message, message


@pytest.mark.parametrize(
    "code",
    [
        "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'pass'], check=True)",
        "import socket\nsocket.socket(socket.AF_UNIX).bind(b'\\0coderunner-package')",
        # A mount namespace of the server's own (mounts in it would be every later
        # execution's): unshare is refused to the server altogether.
        "import ctypes, errno\n"
        "if ctypes.CDLL(None, use_errno=True).unshare(0x20000) != 0:\n"
        "    raise PermissionError(ctypes.get_errno(), 'unshare refused')",
    ],
)
def test_a_package_cannot_start_a_program_or_a_rendezvous_at_import(
    synced: Path, tmp_path: Path, code: str
) -> None:
    # The import fails in the server (reported on its stderr) and again in the snippet,
    # which gets the error at the package's own line; the server itself stays up.
    result = execute(tampered(synced, tmp_path, code), "import dateutil")
    assert not result.ok and result.error is not None, result
    assert result.error.type == coderunner.ErrorType.RUNTIME_ERROR, result.error
    assert result.error.name == "PermissionError", result.error
    after = execute(tampered(synced, tmp_path / "again", "X = 1"), "import dateutil\ndateutil.X")
    assert after.ok and after.result == 1, after
