"""The one result model shared by the Python API, the CLI, HTTP and MCP."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

MIN_MEMORY_MB = 32  # below this V8 cannot even start

# The request fields every surface shares (executions, tools, Agent Mode), declared once.
# Inputs' default is on each field (`= Field(default_factory=dict)`): type checkers see a
# default only there, not inside Annotated.
Code = Annotated[str, Field(description="The snippet's source.")]
Inputs = Annotated[
    dict[str, Any], Field(description="Named inputs, bound to main's parameters by name.")
]
TimeoutMs = Annotated[
    int | None, Field(ge=1, description="Wall-clock limit in milliseconds (server default).")
]
MemoryMb = Annotated[
    int | None,
    Field(ge=MIN_MEMORY_MB, description="Memory limit in MiB (server default)."),
]
OutputSchema = Annotated[
    dict[str, Any] | None,
    Field(description="JSON Schema (draft 2020-12) the result must validate against."),
]


class Language(str, Enum):
    """A snippet language."""

    PYTHON = "python"
    JAVASCRIPT = "javascript"


class ErrorType(str, Enum):
    """Why an execution did not produce a valid result."""

    SYNTAX_ERROR = "syntax_error"  # the snippet does not parse
    RUNTIME_ERROR = "runtime_error"  # the snippet raised, or exited instead of returning
    TIMEOUT = "timeout"  # wall clock ran out; the snippet was killed
    MEMORY_LIMIT = "memory_limit"  # the snippet went over memory_mb
    OUTPUT_LIMIT = "output_limit"  # the encoded result is larger than the result limit
    SERIALIZATION_ERROR = "serialization_error"  # the result is not faithfully JSON
    INPUT_ERROR = "input_error"  # inputs do not fit main's parameters
    SCHEMA_ERROR = "schema_error"  # the result does not validate against output_schema
    SANDBOX_ERROR = "sandbox_error"  # the service's fault, never the snippet's


class ErrorDetail(BaseModel):
    """What went wrong, pointing at the snippet's own line."""

    model_config = ConfigDict(extra="forbid")

    type: ErrorType
    name: str | None = Field(None, description="Exception class, e.g. ZeroDivisionError.")
    message: str
    line: int | None = Field(None, description="1-based line in the snippet.")
    traceback: str | None = Field(None, description="The snippet's own frames only.")


class ExecutionResult(BaseModel):
    """The outcome of one execution; every outcome of a snippet is one of these."""

    model_config = ConfigDict(extra="forbid")

    ok: bool
    result: Any = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    error: ErrorDetail | None = None
    duration_ms: float = 0.0
    language: Language
    execution_id: str = Field(
        "", description="This execution's id (also in its log line); set by the engine."
    )


class ExecutionRequest(BaseModel):
    """One snippet to run: the same fields on every surface."""

    model_config = ConfigDict(extra="forbid")

    language: Language
    code: Code
    inputs: Inputs = Field(default_factory=dict)
    timeout_ms: TimeoutMs = None
    memory_mb: MemoryMb = None
    output_schema: OutputSchema = None
