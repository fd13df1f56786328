"""Service settings as data: one table drives defaults, validation, CLI flags and docs."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import InvalidRequest
from ._models import MIN_MEMORY_MB, ExecutionRequest

MiB = 1024 * 1024

# The `cgroups` setting: what the service does without a writable pids+memory cgroup.
#   auto      use one where this service may create it; else rlimits, unless the service
#             runs as root (the kernel exempts root from RLIMIT_NPROC: no process limit)
#   required  refuse to start without one (an operator who delegated a cgroup and wants
#             memory and process counts as hard kernel limits, never a fallback)
CGROUP_MODES: tuple[str, ...] = ("auto", "required")


def env_value(environ: Mapping[str, str], name: str) -> str | None:
    """The value of the variable `name`, or of the file `name_FILE` names (a container's
    mounted secret; one trailing newline is dropped); None when neither is set.

    InvalidRequest when both are set, or when the file cannot be read.
    """
    path = environ.get(f"{name}_FILE")
    if path is None:
        return environ.get(name)
    if name in environ:
        raise InvalidRequest(f"{name} and {name}_FILE are both set: set one of them")
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise InvalidRequest(f"{name}_FILE={path!r} cannot be read: {exc.strerror}") from None
    return text[:-1] if text.endswith("\n") else text


# JavaScript's isolation modes (the javascript_isolation setting).
JAVASCRIPT_ISOLATION_MODES = ("process", "isolate")


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Limits, pool sizes and server options; every field is also `CODERUNNER_<NAME>`."""

    default_timeout_ms: int = _setting(5000, "Wall-clock limit when a request names none.")
    max_timeout_ms: int = _setting(60_000, "Largest timeout_ms a request may ask for.")
    default_memory_mb: int = _setting(256, "Memory limit when a request names none.")
    max_memory_mb: int = _setting(2048, "Largest memory_mb a request may ask for.")
    output_limit_bytes: int = _setting(MiB, "Cap on captured stdout and on stderr, each.")
    result_limit_bytes: int = _setting(16 * MiB, "Largest encoded result (else output_limit).")
    max_processes: int = _setting(16, "Processes and threads one execution may have.")
    tmp_size_mb: int = _setting(16, "Size of the in-memory scratch /tmp of one execution.")
    cgroups: str = _setting(
        "auto",
        "'auto': pids+memory cgroups where the service may create them, else rlimits "
        "(refused as root); 'required': refuse to start without them.",
    )
    python_pool_size: int = _setting(8, "Pre-forked isolated Python children kept ready.")
    python_fork_servers: int = _setting(
        min(4, os.cpu_count() or 1), "Jailed Python fork servers (one per core scales best)."
    )
    javascript_pool_size: int = _setting(2, "Pre-started jailed JavaScript workers kept ready.")
    max_concurrency: int = _setting(
        max(2, 2 * (os.cpu_count() or 1)), "Executions running at once."
    )
    queue_size: int = _setting(64, "Executions that may wait for a slot before 429.")
    max_body_bytes: int = _setting(32 * MiB, "Largest HTTP request body (else 413).")
    agent_preview_chars: int = _setting(400, "Agent Mode: characters of each input shown.")
    agent_timeout_s: float = _setting(120.0, "Agent Mode: time budget of one agent run.")
    data_dir: str = _setting(
        "",
        "Where the library and history live ('' = $XDG_DATA_HOME/coderunner, else "
        "~/.local/share/coderunner).",
    )
    database_url: str = _setting(
        "",
        "postgresql://... to share one library and history between nodes ('' = SQLite "
        "in data_dir).",
    )
    history_limit: int = _setting(10_000, "Executions kept in the history (the oldest go).")
    python_packages: str = _setting(
        "",
        "Vetted pip packages snippets may import, comma-separated requirement specifiers "
        "(e.g. python-dateutil==2.9.0.post0); installed into data_dir by `coderunner "
        "packages sync` (or at start-up when the list changed).",
    )
    javascript_packages: str = _setting(
        "",
        "Vetted npm packages snippets may import, comma-separated, at exact versions "
        "(e.g. lodash@4.17.21); installed like python_packages.",
    )
    javascript_isolation: str = _setting(
        "process",
        "How JavaScript executions are isolated: 'process' (a fresh jailed Deno process "
        "each) or 'isolate' (a fresh V8 isolate each, inside jailed workerd processes that "
        "serve one execution at a time; faster, but an engine exploit reaches later "
        "executions of the same process until it is recycled; see docs/performance.md).",
    )
    javascript_isolate_processes: int = _setting(
        os.cpu_count() or 1,
        "Isolate mode: workerd processes per API key (one execution in flight each).",
    )
    javascript_isolate_recycle_executions: int = _setting(
        1000, "Isolate mode: a workerd process is replaced after this many executions."
    )
    javascript_isolate_recycle_s: float = _setting(
        300.0, "Isolate mode: a workerd process is replaced after this many seconds."
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `CODERUNNER_*` variables, then explicit overrides (not None)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env_value(environ, f"CODERUNNER_{f.name.upper()}")
            if raw is not None:
                kind: type[Any] = type(f.default)  # every field has one (_setting)
                try:
                    values[f.name] = kind(raw)
                except ValueError:
                    raise InvalidRequest(
                        f"CODERUNNER_{f.name.upper()}={raw!r} is not a valid "
                        f"{type(f.default).__name__}"
                    ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse settings that contradict each other."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                continue
            if not math.isfinite(value):
                raise InvalidRequest(f"setting {f.name} must be a finite number, not {value}")
            if value < 0:
                raise InvalidRequest(f"setting {f.name} must not be negative")
        if self.default_timeout_ms > self.max_timeout_ms:
            raise InvalidRequest("default_timeout_ms is larger than max_timeout_ms")
        if not MIN_MEMORY_MB <= self.default_memory_mb <= self.max_memory_mb:
            raise InvalidRequest(
                f"default_memory_mb must be between {MIN_MEMORY_MB} and max_memory_mb"
            )
        if self.default_memory_mb > self.max_memory_mb:
            raise InvalidRequest("default_memory_mb is larger than max_memory_mb")
        if self.database_url and not self.database_url.startswith(
            ("postgresql://", "postgres://", "postgresql+psycopg://", "sqlite:///")
        ):
            raise InvalidRequest(
                "database_url must be a postgresql://... URL (or sqlite:///path); "
                "leave it empty for SQLite in data_dir"
            )
        if self.max_concurrency < 1:
            raise InvalidRequest("max_concurrency must be at least 1")
        if self.javascript_isolation not in JAVASCRIPT_ISOLATION_MODES:
            raise InvalidRequest(
                f"javascript_isolation must be one of {', '.join(JAVASCRIPT_ISOLATION_MODES)}, "
                f"not {self.javascript_isolation!r}"
            )
        if self.javascript_isolate_processes < 1 or self.javascript_isolate_recycle_executions < 1:
            raise InvalidRequest(
                "javascript_isolate_processes and javascript_isolate_recycle_executions must "
                "be at least 1"
            )
        if self.cgroups not in CGROUP_MODES:
            raise InvalidRequest(
                f"cgroups must be one of {', '.join(CGROUP_MODES)}, not {self.cgroups!r}"
            )

    def resolve_limits(self, request: ExecutionRequest) -> tuple[int, int]:
        """The (timeout_ms, memory_mb) a request runs with; above a maximum is refused."""
        timeout_ms = request.timeout_ms or self.default_timeout_ms
        memory_mb = request.memory_mb or self.default_memory_mb
        if timeout_ms > self.max_timeout_ms:
            raise InvalidRequest(
                f"timeout_ms={timeout_ms} is above this server's maximum of {self.max_timeout_ms}"
            )
        if memory_mb < MIN_MEMORY_MB:
            raise InvalidRequest(
                f"memory_mb={memory_mb} is below {MIN_MEMORY_MB}, the least a runtime can start in"
            )
        if memory_mb > self.max_memory_mb:
            raise InvalidRequest(
                f"memory_mb={memory_mb} is above this server's maximum of {self.max_memory_mb}"
            )
        return timeout_ms, memory_mb


@dataclass(frozen=True)
class ServerOptions:
    """Options of `coderunner serve` only: where it listens and who may call it."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServerOptions:
        """`CODERUNNER_HOST`, `CODERUNNER_PORT` and `CODERUNNER_API_KEYS` (comma-separated),
        then explicit overrides (not None); InvalidRequest names a bad value."""
        environ = os.environ if environ is None else environ
        host = env_value(environ, "CODERUNNER_HOST") or cls.host
        raw_port = env_value(environ, "CODERUNNER_PORT")
        port = cls.port
        if raw_port is not None:
            try:
                port = int(raw_port)
            except ValueError:
                raise InvalidRequest(
                    f"CODERUNNER_PORT={raw_port!r} is not a valid port number"
                ) from None
        raw_keys = env_value(environ, "CODERUNNER_API_KEYS") or ""
        keys = tuple(k.strip() for k in raw_keys.replace("\n", ",").split(","))
        values: dict[str, Any] = {
            "host": host,
            "port": port,
            "api_keys": tuple(k for k in keys if k),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        options = cls(**values)
        if not 0 <= options.port <= 65535:
            raise InvalidRequest(f"port {options.port} is not between 0 and 65535")
        return options


def resolved_data_dir(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """The data directory `settings.data_dir` names, or the default one."""
    if settings.data_dir:
        return os.path.abspath(os.path.expanduser(settings.data_dir))
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return os.path.join(base, "coderunner")


def describe_settings() -> list[tuple[str, Any, str]]:
    """(name, default, help) of every setting, for CLI help and docs."""
    return [(f.name, f.default, f.metadata["help"]) for f in dataclasses.fields(Settings)]
