"""THE host↔jail protocol: every path, descriptor, message, exit status and frame shape
that the service and the in-jail runners share, written down once.

Standard library only: the Python runner and fork server import this module inside the
jail (this folder is mounted read-only at `RUNNER_DIR`), the host imports it as
``coderunner._jail.protocol``, and ``js_runner.mjs`` keeps a copy of its literals that
``tests/jail/test_protocol.py`` pins to the values here.

One execution
-------------

1. The host starts a runtime in a jail ahead of demand.
   JavaScript: bubblewrap runs Deno on ``js_runner.mjs``; the result FIFO is bound at
   `RESULT_FIFO`.  Python: a pre-forked child of the fork server (below); its stdin,
   stdout, stderr and result descriptor arrive with the job.
2. The runner reports `READY` (JavaScript: the line ``ready\\n`` on the FIFO; Python: the
   message ``ready`` on its socket).  It has run no user code.  The host now sets the
   jail's rlimits from outside (prlimit) and keeps the runner warm.
3. The host sends the `Job` (`encode_job`): JSON, UTF-8, on the runner's stdin, which it
   then closes.  The runner reads to EOF and answers `STARTED` (``started\\n`` / the
   message ``started``): from here on the job counts as delivered.  (Inputs the host
   has already encoded, `EncodedInputs`, are spliced in as they are: one JSON object
   either way.)
4. The runner runs the snippet and writes one frame to the result channel (`RESULT_FD`
   for Python, the FIFO for JavaScript), closes it, and exits:

       {"ok": true}\\n<the result as JSON>
       {"ok": false, "error": {"type", "name", "message", "line", "traceback"}}\\n

   `decode_frame` reads it defensively: the snippet can write into the same channel, so
   anything that is not one well-formed frame is the snippet's fault (runtime_error),
   never the service's.  An ok frame's result is decoded in full, which proves it one
   valid JSON value; except that the host may pass a `defer` check for a large result
   that proves the same without building the value (`Frame.deferred`: the body alone,
   which HTTP sends on as it is, and decodes only if something needs the value).
5. The host kills whatever is left of the jail and removes it.

Python fork server control channel (SOCK_SEQPACKET, its descriptor given in the
`ForkServerConfig` on argv[1] as JSON):

    host → server   fork                       prepare one more child
    server → host   up                         the server is ready
    server → host   ready <pid> + [socket]     a child exists; the socket reaches it
    server → host   exit <pid> <status>        a child ended (status as in subprocess)
    server → host   error <text>               a child could not be started

Child socket: ``ready`` (child → host, isolated and filtered), ``job`` + [stdin, stdout,
stderr, result] (host → child), ``started`` (child → host).
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypedDict

# Our own references, taken at import: a snippet that monkeypatches json (in the runner's
# process) cannot garble the frame.
_json_dumps, _json_loads = json.dumps, json.loads

# -- paths inside the jail ----------------------------------------------------------

RUNNER_DIR = "/runner"  # this folder, read-only
DENO = "/runtime/deno"  # the Deno binary
# The CPython that runs the service, wherever the host keeps it (a checkout's venv, pyenv
# under /root): bin/, lib/pythonX.Y/ and, when shared, its libpython in lib/.
PYTHON_HOME = "/runtime/python"
RESULT_FIFO = "/run/result"  # JavaScript: READY/STARTED lines, then the frame
CHILD_FILTER = "/run/child.bpf"  # Python: the seccomp filter each fork-server child loads
# Python: the filter the fork server loads before it imports the vetted packages, so that
# their import-time code cannot start a program or meet another process over a socket.
IMPORT_FILTER = "/run/import.bpf"
JS_MODULE = "/tmp/.coderunner-snippet.mjs"  # JavaScript: the snippet as a module
TS_MODULE = "/tmp/.coderunner-snippet.ts"  # TypeScript: the same (Deno strips the types)
# The vetted packages (`_packages.py`), read-only, when the settings name any.  Python's
# is a `pip install --target` directory the fork server puts on sys.path; node_modules
# sits at the root so that Node's resolution, which walks up from the importing file
# (the snippet in /tmp, the runner in /runner), finds it for `import` and `require`.
PYTHON_PACKAGES = "/packages/python"
JS_NODE_MODULES = "/node_modules"
# Python: the service's own msgspec, read-only, for the runner alone (it encodes results
# with it, ~8x faster than json, and decodes jobs, ~2x); a snippet's `import msgspec`
# does not find it (python_runner.py).
RUNNER_LIBS = "/runner-libs"

# -- descriptors of a Python fork-server child running its job -------------------------

RESULT_FD = 3  # the frame
STATUS_FD = 4  # /proc/self/status, opened before /proc is hidden (to read VmSize)

# -- messages --------------------------------------------------------------------------

READY = b"ready"
STARTED = b"started"
JOB = b"job"
FORK = b"fork"
UP = b"up"
JOB_FDS = 4  # stdin, stdout, stderr, result: sent with JOB

# -- exit statuses of a fork-server child that never ran its job -------------------------

EXIT_SETUP_FAILED = 70  # isolating the child failed (it reported why on stderr)
EXIT_BAD_JOB_MESSAGE = 72  # the JOB message did not carry the four descriptors

# -- clone(2) namespace flags (the seccomp filter refuses them; the fork server uses three)

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080
CLONE_NEW_FLAGS = (
    CLONE_NEWNS,
    CLONE_NEWCGROUP,
    CLONE_NEWUTS,
    CLONE_NEWIPC,
    CLONE_NEWUSER,
    CLONE_NEWPID,
    CLONE_NEWNET,
    CLONE_NEWTIME,
)

# -- the error types a runner may report (the host's ErrorType has these and more) -------

RUNNER_ERROR_TYPES = frozenset(
    {
        "syntax_error",
        "runtime_error",
        "memory_limit",
        "output_limit",
        "serialization_error",
        "input_error",
    }
)

# -- the job -----------------------------------------------------------------------------


class Job(TypedDict):
    """What the host sends a runner: one snippet and its limits."""

    code: str
    inputs: dict[str, Any]
    memory_mb: int  # the snippet's own memory, on top of the warm runtime
    result_limit_bytes: int  # the largest encoded result
    # "python", "javascript" or "typescript": the JavaScript runner writes a TypeScript
    # snippet to TS_MODULE instead of JS_MODULE (one warm Deno pool serves both).
    language: str


class EncodedInputs(dict[str, Any]):
    """Inputs that carry their own JSON text as well, encoded once by the host (which
    had to encode them anyway, to check they are JSON), so that `encode_job` splices the
    text in instead of encoding a large payload a second time."""

    def __init__(self, values: dict[str, Any], text: bytes) -> None:
        super().__init__(values)
        self.text = text  # the values as a JSON object, UTF-8 (lone surrogates passed)


def encode_job(job: Job) -> bytes:
    """The job as the runner reads it (lone surrogates in the inputs pass through)."""
    inputs = job["inputs"]
    if not isinstance(inputs, EncodedInputs):
        return _json_dumps(job, ensure_ascii=False).encode("utf-8", "surrogatepass")
    rest = _json_dumps({k: v for k, v in job.items() if k != "inputs"}, ensure_ascii=False)
    return rest[:-1].encode("utf-8", "surrogatepass") + b', "inputs": ' + inputs.text + b"}"


def decode_job(data: bytes) -> Job:
    """The job as the host sent it."""
    with paused_gc():
        job: Job = _json_loads(data.decode("utf-8", "surrogatepass"))
    return job


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection in the block: decoding a large JSON document creates
    containers by the hundred thousand, each batch of which would start a collection
    that walks them all again, and decoding creates no cycles to collect."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# -- fork server configuration ------------------------------------------------------------


@dataclass(frozen=True)
class ForkServerConfig:
    """What the fork server needs to know, passed as JSON in its argv[1]."""

    control_fd: int  # its end of the control socket
    tmp_size_mb: int  # each child's private /tmp
    shm_size_mb: int  # each child's private /dev/shm
    # With vetted packages (mounted at PYTHON_PACKAGES): the modules it imports before
    # it forks, and `name version (import module)` of each, for the message of an
    # import of anything else.
    preload: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()

    def encode(self) -> str:
        return _json_dumps(self.__dict__)

    @classmethod
    def decode(cls, text: str) -> ForkServerConfig:
        fields = _json_loads(text)
        for name in ("preload", "packages"):
            if name in fields:
                fields[name] = tuple(fields[name])
        return cls(**fields)


# -- control messages ---------------------------------------------------------------------


@dataclass(frozen=True)
class ControlMessage:
    """One message of the fork server to the host."""

    kind: str  # "up", "ready", "exit" or "error"
    pid: int = 0  # the child's pid in the server's namespace (ready, exit)
    status: int = 0  # exit: as subprocess reports it (negative: killed by that signal)
    text: str = ""  # error: what went wrong


def child_ready(pid: int) -> bytes:
    return b"ready %d" % pid


def child_exit(pid: int, status: int) -> bytes:
    return b"exit %d %d" % (pid, status)


def child_error(text: str) -> bytes:
    return b"error " + text.encode("utf-8", "replace")


def parse_control(data: bytes) -> ControlMessage:
    """A control message; ValueError when it is not one."""
    words = data.split()
    kind = words[0].decode("ascii", "replace") if words else ""
    if kind == "up" and len(words) == 1:
        return ControlMessage("up")
    if kind == "ready" and len(words) == 2:
        return ControlMessage("ready", pid=int(words[1]))
    if kind == "exit" and len(words) == 3:
        return ControlMessage("exit", pid=int(words[1]), status=int(words[2]))
    if kind == "error":
        return ControlMessage("error", text=data[6:].decode("utf-8", "replace"))
    raise ValueError(f"not a fork-server control message: {data[:80]!r}")


# -- the frame -----------------------------------------------------------------------------


def encode_frame(header: dict[str, Any], body: bytes | None = None) -> bytes:
    """The header as one ASCII JSON line, then the encoded result when it is ok."""
    line = _json_dumps(header, ensure_ascii=True).encode("ascii") + b"\n"
    return line if body is None else line + body


def failure(
    type: str,
    message: str,
    name: str | None = None,
    line: int | None = None,
    traceback: str | None = None,
) -> dict[str, Any]:
    """The header of an execution that did not produce a valid result."""
    error = {"type": type, "name": name, "message": message, "line": line}
    return {"ok": False, "error": {**error, "traceback": traceback}}


def has_header(data: bytes) -> bool:
    """Whether the channel holds a complete header line (the runner got that far)."""
    header, newline, _ = data.partition(b"\n")
    return bool(newline) and header.startswith(b"{")


@dataclass(frozen=True)
class Frame:
    """What a result channel held, read defensively.

    Exactly one of: ``value`` set (ok, the result), ``error`` set (a failure the runner
    reported, its fields checked), ``garbage`` set (why the channel does not hold one
    well-formed frame: the snippet wrote into it), or ``empty`` (nothing usable at all).
    """

    ok: bool = False
    value: Any = None
    body: bytes | None = None  # ok: the result's JSON as the channel held it (validated)
    deferred: bool = False  # ok: `body` was checked by `defer`, `value` left undecoded
    error: dict[str, Any] | None = None
    garbage: str | None = None
    empty: bool = False


# A header is one short line: an error message and a traceback of the snippet's frames.
MAX_HEADER_BYTES = 4 * 1024 * 1024
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(data: bytes) -> Any:
    """Strict JSON from UTF-8 bytes; only ever raises ValueError.

    Strict: invalid UTF-8 (lone surrogates written as raw bytes included) and the
    NaN/Infinity extensions are refused.  The C decoder counts nesting against the
    recursion limit and raises RecursionError (cleanly) on deeper input, e.g. ``[[[[...``
    that a snippet wrote into the channel.
    """
    try:
        with paused_gc():
            return _json_loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (RecursionError, MemoryError) as exc:
        raise ValueError(f"it cannot be decoded: {type(exc).__name__}") from None


def lone_surrogate_path(value: Any, path: str = "result") -> str | None:
    """The path of the first string (or key) holding a lone surrogate, else None.

    Such a string is not Unicode text: no UTF-8 encoder (HTTP, the CLI, MCP) can send it.
    Paths are written as the runners write them (``result.a[1]["b c"]``).
    """
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if not node.isascii() and not _is_utf8(node):
                return where
        elif isinstance(node, list):
            stack.extend(reversed([(item, f"{where}[{i}]") for i, item in enumerate(node)]))
        elif isinstance(node, dict):
            children = []
            for key, item in node.items():
                if isinstance(key, str) and not _is_utf8(key):
                    return f"{child_path(where, key)} (a key)"
                children.append((item, child_path(where, key)))
            stack.extend(reversed(children))
    return None


def child_path(path: str, key: Any) -> str:
    """The path of `key` below `path`: ``.name`` for identifiers, else ``["any key"]``."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{_json_dumps(key) if isinstance(key, str) else repr(key)}]"


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_text(value: Any) -> str | None:
    """A string safe to send anywhere: each lone surrogate becomes one U+FFFD."""
    if value is None:
        return None
    text = str(value)
    if text.isascii() or _is_utf8(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def decode_frame(
    data: bytes,
    fast_loads: Callable[[bytes], Any] | None = None,
    defer: Callable[[bytes], bool] | None = None,
) -> Frame:
    """Interpret what a result channel held (see the module docstring, step 4).

    `fast_loads`: a faster strict decoder for the result (the host's); whatever it
    refuses with ValueError is decoded again here, so the outcome never depends on it.
    `defer`: the host's check that a result is strict JSON without decoding it (it
    answers False for anything in doubt, which is then decoded here as usual); a result
    it passes is left undecoded (`Frame.deferred`).
    """
    header_line, newline, body = data.partition(b"\n")
    if not newline or not header_line.startswith(b"{") or len(header_line) > MAX_HEADER_BYTES:
        return Frame(empty=not data, garbage=None if not data else "no header line")
    try:
        header = _loads(header_line)
    except ValueError as exc:
        return Frame(garbage=f"the header is not JSON ({exc})")
    if not isinstance(header, dict) or not isinstance(header.get("ok"), bool):
        return Frame(garbage="the header is not a frame header")
    if header["ok"]:
        # A result that escapes a surrogate is decoded, for the walk below to name it.
        if defer is not None and not _ESCAPED_SURROGATE.search(body) and defer(body):
            return Frame(ok=True, body=body, deferred=True)
        try:
            value = _decode_result(body, fast_loads)
        except ValueError as exc:
            return Frame(garbage=f"the result is not JSON ({exc})")
        if _ESCAPED_SURROGATE.search(body):  # only then is a walk worth it
            where = lone_surrogate_path(value)
            if where is not None:
                return Frame(error=lone_surrogate_error(where))
        return Frame(ok=True, value=value, body=body)
    error = header.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    if not isinstance(error, dict) or not isinstance(kind, str) or kind not in RUNNER_ERROR_TYPES:
        return Frame(garbage="the header's error is not one a runner reports")
    line = error.get("line")
    return Frame(
        error={
            "type": error["type"],
            "name": clean_text(error.get("name")),
            "message": clean_text(error.get("message")) or "",
            "line": line if isinstance(line, int) and not isinstance(line, bool) else None,
            "traceback": clean_text(error.get("traceback")),
        }
    )


def _decode_result(body: bytes, fast_loads: Callable[[bytes], Any] | None) -> Any:
    if fast_loads is not None:
        try:
            return fast_loads(body)
        except ValueError:
            pass  # not strict JSON to it: the standard decoder has the last word
    return _loads(body)


def lone_surrogate_error(where: str) -> dict[str, Any]:
    """The serialization_error of a result holding a lone surrogate at `where`."""
    error: dict[str, Any] = failure(
        "serialization_error",
        f"{where} is a string with a lone surrogate, which is not Unicode text and cannot "
        "be sent as JSON: remove it, or return the text encoded (e.g. as base64)",
        name="str",
    )["error"]
    return error
