"""Exceptions of the service itself and of its callers' misuse.

A snippet's own failures are never exceptions: they are results with ``ok: false``.

    CodeRunnerError
    ├── InvalidRequest          the caller asked for something we refuse (HTTP 422)
    │   └── ExamplesFailed      a library save whose examples do not pass (HTTP 422)
    ├── NotFound                no such library snippet, version or execution (HTTP 404)
    ├── Saturated               every worker is busy and the queue is full (HTTP 429/503)
    ├── SandboxUnavailable      an isolation layer the policy requires cannot be set up
    └── StoreUnavailable        the library's database cannot be reached or used
"""

from __future__ import annotations


class CodeRunnerError(Exception):
    """Base class of every exception raised by coderunner."""


class InvalidRequest(CodeRunnerError):
    """The request is malformed or asks for more than the server allows."""


class Saturated(CodeRunnerError):
    """Too many executions are running or queued; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SandboxUnavailable(CodeRunnerError):
    """The jail cannot be built on this host, so nothing is executed (fail closed)."""


class NotFound(CodeRunnerError):
    """No library snippet, version or recorded execution of that name or id."""


class ExamplesFailed(InvalidRequest):
    """A library save was refused: the listed examples did not pass; nothing was stored."""

    def __init__(self, message: str, failures: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.failures = failures


class StoreUnavailable(CodeRunnerError):
    """The library's database cannot be reached or used; plain executions still run."""
