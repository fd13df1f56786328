"""A real `coderunner serve` subprocess for the HTTP, MCP and fuzz tests.

`running_server(*flags)` starts the server on a free loopback port, waits for `/healthz`,
and on the way out stops it with terminate → wait → kill.  A child that dies or never
becomes ready raises with its whole output.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

VENV_BIN = Path(sys.executable).parent
CODERUNNER = str(VENV_BIN / "coderunner")

API_KEYS = ("test-key-one", "test-key-two")
AUTH = {"Authorization": f"Bearer {API_KEYS[0]}"}
MAX_BODY_BYTES = 256 * 1024

# Small pools: the machine has two cores and other suites run beside these.
SMALL_POOLS = ("--python-pool-size", "2", "--javascript-pool-size", "1")
# The shared server most tests use: API keys on, a small body limit.
MAIN_FLAGS = (
    *SMALL_POOLS,
    "--max-body-bytes",
    str(MAX_BODY_BYTES),
    "--api-key",
    API_KEYS[0],
    "--api-key",
    API_KEYS[1],
)


def recorded(client: httpx.Client, execution_id: str, within_s: float = 30) -> httpx.Response:
    """`GET /v1/executions/{execution_id}`, asked again while it is 404 for at most
    `within_s` (the history is written in batches, in the background): the last answer."""
    deadline = time.monotonic() + within_s
    while True:
        found = client.get(f"/v1/executions/{execution_id}")
        if found.status_code != 404 or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One `coderunner serve` child and its combined output (in a temporary file)."""

    def __init__(
        self, *flags: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
    ) -> None:
        """`prefix`: an argv the command runs under (e.g. another user's, test_nonroot)."""
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(prefix="coderunner-serve-", suffix=".log")
        # A library and history of its own, unless the test shares one on purpose.
        self._data = tempfile.TemporaryDirectory(prefix="coderunner-data-")
        argv = [*prefix, CODERUNNER, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += flags
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CODERUNNER_DATA_DIR": self._data.name, **(env or {})},
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self, since: int = 0) -> str:
        """What the server printed (from byte offset `since`)."""
        return Path(self._log.name).read_bytes()[since:].decode(errors="replace")

    def output_size(self) -> int:
        return Path(self._log.name).stat().st_size

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Poll /healthz until 200; raise with the server's output if it dies or hangs."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"coderunner serve exited with {self.process.returncode} before it was "
                    f"ready; its output:\n{self.output()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"coderunner serve was not ready in {timeout_s}s:\n{self.output()}")

    def stop(self, timeout_s: float = 20.0) -> int:
        """terminate → wait → kill; returns the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                print(f"coderunner serve pid {self.pid} ignored SIGTERM; killing it")
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def close(self) -> None:
        self.stop()
        self._log.close()
        self._data.cleanup()

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)


def descendants(pid: int) -> list[tuple[int, str, str]]:
    """(pid, start time, command name) of every descendant of `pid`, from /proc."""
    found: list[tuple[int, str, str]] = []
    queue = [pid]
    while queue:
        current = queue.pop()
        try:
            tids = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                children = Path(f"/proc/{current}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                identity = process_identity(child)
                if identity is not None:
                    found.append((child, *identity))
                    queue.append(child)
    return found


def process_identity(pid: int) -> tuple[str, str] | None:
    """(start time, command name) of a live process, or None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return fields[19], name  # field 22 of stat: start time in clock ticks


@contextlib.contextmanager
def running_server(
    *flags: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> Iterator[ServerProcess]:
    """A ready `coderunner serve` with these flags; its output is printed when done."""
    server = ServerProcess(*flags, env=env, prefix=prefix)
    try:
        server.wait_ready()
        yield server
    finally:
        status = server.stop()
        print(f"--- coderunner serve (pid {server.pid}, exit {status}) output ---")
        print(server.output()[-20_000:])
        server.close()
