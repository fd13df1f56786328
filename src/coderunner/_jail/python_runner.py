"""Runs inside the jail: the snippet conventions, results and errors of Python.

Imported once by the fork server (python_forkserver.py), whose children each call
`serve_job` once: read the `protocol.Job` from stdin to EOF, run the snippet, write one
frame (`protocol.encode_frame`) to the result descriptor, and exit.  What the snippet
prints goes to stdout/stderr, which the host captures separately.  Standard library only.
"""

import ast
import asyncio
import base64
import builtins
import collections
import contextlib
import csv
import dataclasses
import datetime
import decimal
import errno
import functools
import gc
import hashlib
import hmac
import inspect
import io
import itertools
import json
import linecache
import math
import operator
import os
import random
import resource
import statistics
import string
import sys
import textwrap
import traceback
import types
import unicodedata
import urllib.parse
import uuid
import zoneinfo
from collections.abc import Awaitable, Callable
from itertools import chain, compress, repeat
from typing import Any, NoReturn

try:
    from . import protocol  # as coderunner._jail.python_runner (tests, type checking)
except ImportError:
    import protocol  # type: ignore[no-redef]  # in the jail: RUNNER_DIR is on sys.path

# The runner's own references: a snippet that monkeypatches json cannot garble the frame.
_dumps, _loads = json.dumps, json.loads


def _load_codec() -> Any:
    """msgspec for the runner's own use, or None.  In a jail it comes from RUNNER_LIBS and
    is then forgotten (sys.path and sys.modules as they were), so that a snippet's
    `import msgspec` finds what it always found: nothing, or a vetted package."""
    if not os.path.isdir(protocol.RUNNER_LIBS):  # imported on the host (tests)
        try:
            import msgspec
        except ImportError:
            return None
        return msgspec
    sys.path.insert(0, protocol.RUNNER_LIBS)
    try:
        import msgspec
    except ImportError:  # (a runtime without it still works, at json's speed)
        return None
    finally:
        sys.path.remove(protocol.RUNNER_LIBS)
        sys.path_importer_cache.pop(protocol.RUNNER_LIBS, None)
        for name in [n for n in sys.modules if n == "msgspec" or n.startswith("msgspec.")]:
            del sys.modules[name]
    return msgspec


_codec = _load_codec()
_codec_errors: tuple[type[BaseException], ...] = (ValueError, RecursionError)
if _codec is not None:
    _codec_errors += (_codec.DecodeError,)  # (ValidationError is one)

SNIPPET = "<snippet>"
MAX_DEPTH = 500
_RESULT_NAME = "__coderunner_result__"

# Keep the linters quiet about modules imported only to be warm for the snippet.
_WARM = (
    base64,
    collections,
    csv,
    dataclasses,
    datetime,
    decimal,
    functools,
    hashlib,
    hmac,
    io,
    itertools,
    math,
    random,
    statistics,
    string,
    textwrap,
    unicodedata,
    urllib,
    uuid,
    zoneinfo,
)


class SerializationProblem(Exception):
    def __init__(self, path: str, type_name: str, hint: str) -> None:
        super().__init__(path)
        self.path, self.type_name, self.hint = path, type_name, hint


_HINTS = [
    ((datetime.datetime, datetime.date, datetime.time), "convert it with .isoformat()"),
    ((set, frozenset), "convert it to a list, e.g. sorted(value) or list(value)"),
    ((bytes, bytearray, memoryview), "decode it to str, or base64-encode it"),
    ((decimal.Decimal,), "convert it to str (exact) or float"),
    ((complex,), "return its parts, e.g. [z.real, z.imag]"),
]


_child_path = protocol.child_path


def check_json(
    value: object, path: str = "result", depth: int = 0, seen: tuple[int, ...] = ()
) -> None:
    """Raise SerializationProblem for anything json.dumps would refuse, drop or alter."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if math.isfinite(value):
            return
        raise SerializationProblem(
            path, "float " + repr(value), "NaN and infinities are not JSON; return None or a string"
        )
    if depth >= MAX_DEPTH:
        raise SerializationProblem(
            path, type(value).__name__, f"the value is nested deeper than {MAX_DEPTH} levels"
        )
    if isinstance(value, (list, tuple, dict)):
        if id(value) in seen:
            raise SerializationProblem(
                path, type(value).__name__, "the value contains itself (a cycle)"
            )
        seen = (*seen, id(value))
        if isinstance(value, dict):
            json_keys: dict[str, object] = {}
            for key in value:
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    continue  # refused with its own message below
                json_key = _dumps(key if isinstance(key, str) else _dumps(key))
                if json_key in json_keys:
                    raise SerializationProblem(
                        _child_path(path, key),
                        f"{type(key).__name__} key",
                        f"it and the key {json_keys[json_key]!r} both become the JSON key "
                        f"{json_key}, so one value would be lost",
                    )
                json_keys[json_key] = key
            for key, item in value.items():
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    raise SerializationProblem(
                        _child_path(path, key),
                        f"{type(key).__name__} key",
                        "JSON object keys must be strings",
                    )
                check_json(item, _child_path(path, key), depth + 1, seen)
        else:
            for index, item in enumerate(value):
                check_json(item, _child_path(path, index), depth + 1, seen)
        return
    for types_, hint in _HINTS:
        if isinstance(value, types_):
            raise SerializationProblem(path, type(value).__name__, hint)
    raise SerializationProblem(
        path,
        type(value).__name__,
        "return plain data: dict, list, str, int, float, bool or None "
        "(e.g. dataclasses.asdict(obj) or vars(obj))",
    )


_SEQUENCES = frozenset({list, tuple})
# The exact types a plain result is made of (subclasses are left to check_json).
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), dict}) | _SEQUENCES
_CONTAINERS = _SEQUENCES | {dict}
_STR_ONLY = frozenset({str})
_get_referents = gc.get_referents
_isfinite = math.isfinite
# CPython 3.11 and 3.12 visit an exact dict's values for the collector, and its keys too
# unless all are exact strings (a table of its own kind).  3.13 may visit a dict's values
# through the object that embeds them instead: there, dict.values.
_DICTS_BY_REFERENTS = sys.implementation.name == "cpython" and sys.version_info < (3, 13)


def _plain_levels(value: object, *, finite: bool) -> bool:
    """`_walk_levels`, False when it raises: a snippet's audit hook may refuse
    `gc.get_referents` (its event names the objects), and memory may run out."""
    try:
        return _walk_levels(value, finite=finite)
    except Exception:
        return False


def _walk_levels(value: object, *, finite: bool) -> bool:
    """Whether `value` is made of the exact built-in JSON types only, with exact strings
    as keys, nested shallower than MAX_DEPTH and (`finite`) with no NaN or infinity,
    proved one level at a time with built-in iteration only (C speed, no per-item
    Python code).  False means "ask check_json", which walks in Python and names the
    path.

    The next level is what the collector visits in this one (`gc.get_referents`): the
    items of each list and tuple and the values of each dict (scalars give nothing).  A
    dict whose keys are not all exact strings gives its keys too: more referents than
    the containers hold items, and check_json decides."""
    level: Any = [value]
    for _ in range(MAX_DEPTH + 1):
        kinds = set(map(type, level))
        if not _PLAIN_TYPES.issuperset(kinds):
            return False
        if finite and float in kinds:
            floats = compress(level, map(operator.is_, map(type, level), repeat(float)))
            if not all(map(_isfinite, floats)):
                return False
        if kinds.isdisjoint(_CONTAINERS):
            return True
        if dict not in kinds:
            level = _get_referents(*level)
            continue
        containers = (
            level
            if kinds <= _CONTAINERS
            else list(compress(level, map(_CONTAINERS.__contains__, map(type, level))))
        )
        if _DICTS_BY_REFERENTS:
            below = _get_referents(*containers)
            if len(below) != sum(map(len, containers)):
                return False
            level = below
            continue
        each = list(map(type, containers))
        dicts = list(compress(containers, map(operator.is_, each, repeat(dict))))
        sequences = list(compress(containers, map(operator.is_not, each, repeat(dict))))
        if not _STR_ONLY.issuperset(map(type, chain.from_iterable(dicts))):
            return False
        level = list(chain.from_iterable(map(dict.values, dicts)))
        level += _get_referents(*sequences)
    return False  # containers MAX_DEPTH levels down


def plainly_json(value: object) -> bool:
    """Whether a value that json.dumps has just encoded also passes `check_json`.

    What json.dumps accepts but check_json refuses: keys that collide once converted
    (only possible with a non-string key), and nesting of MAX_DEPTH levels or more.
    NaN, infinities, cycles, other types and non-JSON keys already failed json.dumps.
    """
    return _plain_levels(value, finite=False)


_encoder = _codec.json.Encoder() if _codec is not None else None


def _encode_fast(value: object) -> tuple[bytes | None, bool | None]:
    """The result as msgspec encodes it, when that is json.dumps's very JSON value and
    `check_json` passes the value, else None (json.dumps's turn); and the walk's verdict
    when it was taken (None if not), which json.dumps's turn then need not take again.

    msgspec refuses subclasses, cycles and lone surrogates, as json.dumps does; what it
    takes and json.dumps does not is ruled out after: other types (enum members, UUIDs,
    dates...), keys other than exact strings (it converts them, and two could collide),
    NaN and infinities (it writes null: none hides in a text without one), nesting of
    MAX_DEPTH levels.  It writes into a bytearray, which fails cleanly when memory runs
    out (its own bytes buffer crashes the process).
    """
    if _encoder is None:
        return None, None
    buffer = bytearray()
    try:
        _encoder.encode_into(value, buffer)
    except (TypeError, ValueError, RecursionError, MemoryError):  # (lone surrogates...)
        return None, None
    # (Where json.dumps then succeeds there is no NaN, so the verdict is plainly_json's.)
    plain = _plain_levels(value, finite=b"null" in buffer)
    if not plain:
        return None, plain
    try:
        return bytes(buffer), plain
    except MemoryError:
        return None, plain


def encode_result(value: object) -> bytes:
    """The result as compact UTF-8 JSON; raises as `check_json` would have, first.

    Encoded first, in C (msgspec, ~8x faster than json.dumps, when `_encode_fast` can
    vouch for it; else json.dumps); `check_json` walks (slowly, naming the path) only to
    explain a failure or when the C-speed walk cannot vouch for the value, so a refused
    result gets exactly the message it always got and a plain one never pays for the
    walk.
    """
    fast, plain = _encode_fast(value)
    if fast is not None:
        return fast
    try:
        text = _dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        body = text.encode("utf-8")
    except (ValueError, TypeError, RecursionError, MemoryError):  # (UnicodeEncodeError too)
        check_json(value)  # a SerializationProblem names the path
        raise
    if not (plainly_json(value) if plain is None else plain):
        check_json(value)
    return body


def _filter_frames(te: traceback.TracebackException) -> None:
    while te is not None:
        te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename == SNIPPET])
        for frame in te.stack:
            frame.lineno = frame.lineno  # keep the summary's own fields
        te = te.__cause__ or te.__context__  # type: ignore[assignment]


def error_from_exception(exc: BaseException, code_lines: int) -> dict[str, Any]:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == SNIPPET:
            line = tb.tb_lineno
        tb = tb.tb_next
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    _filter_frames(te)
    text = "".join(te.format())
    return {
        "type": "runtime_error",
        "name": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "line": line,
        "traceback": text,
    }


def compile_snippet(code: str) -> types.CodeType:
    """Compile; a final expression statement becomes the result (notebook style)."""
    tree = ast.parse(code, SNIPPET, "exec")
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1]
        assign = ast.Assign(targets=[ast.Name(_RESULT_NAME, ast.Store())], value=last.value)
        tree.body[-1] = ast.copy_location(assign, last)
        ast.fix_missing_locations(tree)
    code_type: types.CodeType = compile(
        tree, SNIPPET, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    return code_type


class InputProblem(Exception):
    pass


def bind_inputs(main: object, inputs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Bind inputs to main's parameters by name; defaults apply; **kwargs takes the rest."""
    try:
        signature = inspect.signature(main)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return [], dict(inputs)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    used: set[str] = set()
    var_kw = False
    missing = []
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
            continue
        if p.kind is p.VAR_POSITIONAL:
            continue
        if p.name in inputs:
            used.add(p.name)
            if p.kind is p.POSITIONAL_ONLY:
                args.append(inputs[p.name])
            else:
                kwargs[p.name] = inputs[p.name]
        elif p.default is p.empty:
            missing.append(p.name)
    if missing:
        given = ", ".join(sorted(inputs)) or "none"
        names = ", ".join(repr(m) for m in missing)
        raise InputProblem(
            f"main() needs input{'s' if len(missing) > 1 else ''} {names} "
            f"that the request does not provide (inputs given: {given})"
        )
    if var_kw:
        kwargs.update({k: v for k, v in inputs.items() if k not in used})
    return args, kwargs


def _run_awaitable(value: object) -> object:
    if inspect.isawaitable(value):
        return asyncio.run(_await(value))
    return value


async def _await(value: Awaitable[object]) -> object:
    return await value


class ExitCalled(SystemExit):
    """os._exit() called by the snippet in the runner's own process."""

    how = "os._exit"


# Shown as the builtin it stands for: the traceback names no runner internals.
ExitCalled.__name__ = ExitCalled.__qualname__ = "SystemExit"
ExitCalled.__module__ = "builtins"


def _guard_os_exit() -> Callable[..., NoReturn]:  # os._exit: (status: int) -> NoReturn
    """Make os._exit in this process raise (it would end the runner without a result).

    A forked child of the snippet still exits for real.  Returns the real os._exit.
    """
    real_exit = os._exit
    runner_pid = os.getpid()

    def _exit(status: int) -> NoReturn:
        if os.getpid() == runner_pid:
            raise ExitCalled(status)
        real_exit(status)

    os._exit = _exit
    return real_exit


_PROGRAM_STARTS = "starting programs is not allowed in the sandbox"


def _refuse_program_starts_clearly() -> None:
    """os.system and os.spawn* report a refused exec as a status (127): make it an error."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(errno.EPERM, _PROGRAM_STARTS)

    for name in ("system", "spawnv", "spawnve", "spawnvp", "spawnvpe", "spawnl", "spawnle",
                 "spawnlp", "spawnlpe"):  # fmt: skip
        if hasattr(os, name):
            setattr(os, name, refuse)


def run_snippet(code: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run one snippet; returns the header dict (and sets 'body' when ok)."""
    runner_pid = os.getpid()
    real_exit = _guard_os_exit()
    _refuse_program_starts_clearly()
    try:
        header = _run_snippet(code, inputs)
    finally:
        os._exit = real_exit
    if os.getpid() != runner_pid:
        # A process the snippet forked ran off the end of the snippet: it ends here, as
        # a script would, and never writes a result of its own.
        error = header.get("error")
        if error:
            sys.stderr.write((error.get("traceback") or error["message"]) + "\n")
            sys.stderr.flush()
        real_exit(1 if error else 0)
    return header


failure = protocol.failure


def _run_snippet(code: str, inputs: dict[str, Any]) -> dict[str, Any]:
    linecache.cache[SNIPPET] = (len(code), None, code.splitlines(True), SNIPPET)
    try:
        compiled = compile_snippet(code)
    except SyntaxError as exc:
        return failure(
            "syntax_error",
            exc.msg or str(exc),
            name=type(exc).__name__,
            line=exc.lineno,
            traceback="".join(traceback.format_exception_only(type(exc), exc)),
        )
    except (ValueError, RecursionError, MemoryError) as exc:  # e.g. null bytes, absurd nesting
        return failure("syntax_error", str(exc), name=type(exc).__name__)
    namespace = {"__name__": "snippet", "__builtins__": builtins, "inputs": inputs}
    namespace.update({k: v for k, v in inputs.items() if k.isidentifier()})
    main_line = None
    try:
        _run_awaitable(eval(compiled, namespace))
        main = namespace.get("main")
        if callable(main):
            main_line = getattr(getattr(main, "__code__", None), "co_firstlineno", None)
            args, kwargs = bind_inputs(main, inputs)
            value = _run_awaitable(main(*args, **kwargs))
        else:
            value = namespace.get(_RESULT_NAME)
    except InputProblem as exc:
        return failure("input_error", str(exc), line=main_line)
    except MemoryError:
        return failure("memory_limit", "the snippet went over its memory limit", name="MemoryError")
    except SystemExit as exc:
        error = error_from_exception(exc, 0)
        how = getattr(exc, "how", "sys.exit")
        error["message"] = f"the snippet called {how}({exc.code!r}) instead of returning a value"
        return {"ok": False, "error": error}
    except BaseException as exc:
        return {"ok": False, "error": error_from_exception(exc, 0)}
    try:
        body = encode_result(value)
    except UnicodeEncodeError:  # a lone surrogate: not text any encoder can send
        where = protocol.lone_surrogate_path(value) or "result"
        return {"ok": False, "error": protocol.lone_surrogate_error(where)}
    except SerializationProblem as p:
        return failure(
            "serialization_error",
            f"{p.path} is {p.type_name}, which is not JSON: {p.hint}",
            name=p.type_name,
        )
    except (ValueError, TypeError, RecursionError) as exc:
        return failure(
            "serialization_error",
            f"result cannot be encoded as JSON: {exc}",
            name=type(exc).__name__,
        )
    except MemoryError:
        return failure(
            "memory_limit", "the result did not fit in the memory limit", name="MemoryError"
        )
    return {"ok": True, "body": body}


# -- third-party packages --------------------------------------------------------------

PACKAGES_SETTING = "python_packages (CODERUNNER_PYTHON_PACKAGES)"


def not_installed_message(name: str, packages: tuple[str, ...]) -> str:
    """Why `import name` failed, when no finder knows it: what this server offers."""
    if packages:
        offered = (
            "besides the standard library, snippets can import only these vetted "
            f"packages: {'; '.join(packages)}"
        )
    else:
        offered = "snippets can import only the standard library"
    return (
        f"No module named {name!r}: it is not installed on this server ({offered}). An "
        f"operator adds vetted packages with the setting {PACKAGES_SETTING}."
    )


class NotInstalledFinder:
    """The last meta-path finder: an import statement (or importlib.import_module) of a
    top-level module no other finder knows fails at once with `not_installed_message`.

    importlib.util.find_spec is how code asks whether a module exists, so it keeps
    getting None: the finder answers only when the import machinery's own
    `_find_and_load_unlocked` asked (CPython's frozen importlib).
    """

    packages: tuple[str, ...] = ()

    @classmethod
    def find_spec(cls, fullname: str, path: object = None, target: object = None) -> Any:
        if path is not None or "." in fullname:  # a submodule: its package's own business
            return None
        caller = sys._getframe(1)
        importer = caller.f_back
        if (
            caller.f_code.co_name != "_find_spec"
            or importer is None
            or importer.f_code.co_name != "_find_and_load_unlocked"
        ):
            return None
        # Finders a package appended after this one (at its import) still get their turn.
        after = sys.meta_path[sys.meta_path.index(cls) + 1 :] if cls in sys.meta_path else []
        for finder in after:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                return spec
        raise ModuleNotFoundError(not_installed_message(fullname, cls.packages), name=fullname)


def install_import_hint(packages: tuple[str, ...]) -> None:
    """Put `NotInstalledFinder` last on sys.meta_path (the fork server, before it forks)."""
    NotInstalledFinder.packages = tuple(packages)
    if NotInstalledFinder not in sys.meta_path:
        sys.meta_path.append(NotInstalledFinder)


def use_packages(directory: str) -> None:
    """Put the vetted packages' directory on sys.path (after the standard library, with
    its .pth files)."""
    import site

    site.addsitedir(directory)


def preload(name: str) -> str | None:
    """Import a vetted package now, so that no snippet pays for it; returns why it could
    not be imported, if it could not (a snippet importing it then gets the error itself)."""
    try:
        __import__(name)
    except BaseException as exc:  # a package that does not import here is reported
        return f"{name}: {type(exc).__name__}: {exc}"
    return None


def decode_job(data: bytes) -> protocol.Job:
    """The job as the host sent it: read by msgspec (~2x faster than json), which gives
    json's very values for strict JSON in UTF-8 and refuses anything else (NaN,
    infinities, lone surrogates, a byte-order mark), which protocol.decode_job reads."""
    if _codec is not None:
        with protocol.paused_gc():
            try:
                job: protocol.Job = _codec.json.decode(data)
            except _codec_errors:
                pass
            else:
                return job
    return protocol.decode_job(data)


def _vm_size_bytes(status_fd: int) -> int:
    """VmSize from an open /proc/self/status (the fork server's children hide /proc)."""
    for line in os.pread(status_fd, 8192, 0).decode().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def serve_job(result_fd: int = protocol.RESULT_FD, status_fd: int = protocol.STATUS_FD) -> None:
    """Read the job from stdin, run it, write the frame to result_fd and exit.

    Called once in each fork-server child, after its isolation is in place.
    """
    # A session (and process group) of its own: kill(0, ...) / killpg from the snippet
    # must not reach the fork server or sibling executions that share its group.
    # (Already a session leader under bwrap --new-session: EPERM, nothing to do.)
    with contextlib.suppress(OSError):
        os.setsid()
    job = decode_job(sys.stdin.buffer.read())
    # Decoded JSON holds no cycles: frozen, the inputs (100,000 rows, say) are not walked
    # again by every full collection the snippet's own allocations start.
    gc.freeze()
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    # "The snippet's memory": what it allocates on top of the warm runner.
    limit = _vm_size_bytes(status_fd) + job["memory_mb"] * 1024 * 1024
    os.close(status_fd)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    header = run_snippet(job["code"], job["inputs"])
    body = header.pop("body", None)
    if body is not None and len(body) > job["result_limit_bytes"]:
        limit = job["result_limit_bytes"]
        message = f"the result is {len(body)} bytes of JSON, above the limit of {limit} bytes"
        header, body = failure("output_limit", message), None
    data = protocol.encode_frame(header, body)
    # The snippet's output ends here: the host sees the end of stdout and stderr now,
    # with the result, instead of when this process's exit has torn its memory down.
    # (A process the snippet left behind may still hold them: the host kills it.)
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        with contextlib.suppress(Exception):
            stream.flush()
        with contextlib.suppress(OSError):
            null = os.open("/dev/null", os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
    view = memoryview(data)
    while view:
        view = view[os.write(result_fd, view) :]
    os.close(result_fd)
    os._exit(0)
