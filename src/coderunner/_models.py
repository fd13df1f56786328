"""The one result model shared by the Python API, the CLI, HTTP and MCP, and the
library's records (snippets, their examples, the execution history)."""

from __future__ import annotations

import datetime
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from ._json import loads as json_loads

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
Secrets = Annotated[
    dict[str, str],
    Field(
        description="Named secrets, bound like inputs; never logged, never stored, never "
        "shown to a model, and masked as *** in stdout, stderr and error."
    ),
]

# A library snippet's name; names starting with "execute-" are the built-in tools'.
SNIPPET_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
RESERVED_NAME_PREFIX = "execute-"


class Language(str, Enum):
    """A snippet language."""

    PYTHON = "python"
    JAVASCRIPT = "javascript"
    TYPESCRIPT = "typescript"  # runs on the JavaScript runtime (Deno strips the types)


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


class SnippetRef(BaseModel):
    """Which library snippet (and version) an execution ran."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: int


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
    snippet: SnippetRef | None = Field(
        None, description="For a library run: the snippet's name and the version that ran."
    )
    # The result's JSON text as the runner wrote it (checked on the host), with the
    # value it was decoded to: a large result goes out over HTTP without being encoded
    # again.  Only while `result` is still that value (replacing it drops the text; code
    # that changes a result replaces it rather than editing it in place).
    _result_json: tuple[Any, bytes] | None = PrivateAttr(None)
    # A large result only checked, not yet decoded (`result` is None until
    # `decode_result`): HTTP sends its text as it is and never needs its value.
    _undecoded: bool = PrivateAttr(False)

    def keep_result_json(self, text: bytes | None) -> None:
        """Remember `text` as the JSON of the current `result` (None forgets it)."""
        self._result_json = None if text is None else (self.result, text)
        self._undecoded = False

    def defer_result(self, text: bytes) -> None:
        """Hold `text`, already checked to be strict JSON, as this successful result's
        value, decoded only when `decode_result` is called."""
        self.ok, self.result = True, None
        self._result_json = (None, text)
        self._undecoded = True

    @property
    def result_undecoded(self) -> bool:
        """Whether `result` is still None for a deferred result (see `defer_result`)."""
        return self._undecoded and self.result_json() is not None

    def decode_result(self) -> None:
        """Give a deferred result its value (no-op otherwise); the text is kept."""
        if self.result_undecoded:
            text = self.result_json()
            assert text is not None
            self.result = json_loads(text)
            self.keep_result_json(text)

    def result_json(self) -> bytes | None:
        """The JSON text of `result` when the runner's own is at hand, else None."""
        kept = self._result_json
        return kept[1] if kept is not None and kept[0] is self.result else None

    def to_json(self) -> bytes:
        """This result as JSON (as `model_dump_json`), splicing in the runner's own JSON
        text of the result when it is at hand instead of encoding the value again."""
        text = self.result_json()
        if text is None or not self.ok:
            return self.__pydantic_serializer__.to_json(self)
        rest = self.model_dump_json(exclude={"result"})
        head = '{"ok":true,'  # `ok`, then `result`, is the fields' order
        if not rest.startswith(head):
            return self.__pydantic_serializer__.to_json(self)
        return b'{"ok":true,"result":' + text + b"," + rest[len(head) :].encode()


class ExecutionRequest(BaseModel):
    """One snippet to run: the same fields on every surface."""

    model_config = ConfigDict(extra="forbid")

    language: Language
    code: Code
    inputs: Inputs = Field(default_factory=dict)
    timeout_ms: TimeoutMs = None
    memory_mb: MemoryMb = None
    output_schema: OutputSchema = None
    secrets: Secrets = Field(default_factory=dict)


# -- the library --------------------------------------------------------------------------


class Example(BaseModel):
    """An example run of a library snippet: its inputs and, optionally, the exact result.

    With `expected` the run must return exactly that JSON value (null included); without
    it, the run must succeed.  Whether `expected` was given: `has_expected`.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="A short label, e.g. 'US number'.")
    inputs: dict[str, Any] = Field(default_factory=dict)
    expected: Any = Field(None, description="The exact result it must return (optional).")

    @property
    def has_expected(self) -> bool:
        return "expected" in self.model_fields_set

    @model_serializer(mode="wrap")
    def _without_unset_expected(self, handler: SerializerFunctionWrapHandler) -> Any:
        # An example without `expected` is shown without it (not as `expected: null`,
        # which means "must return null"), so a snippet read back saves as it was.
        data = handler(self)
        if isinstance(data, dict) and not self.has_expected:
            data.pop("expected", None)
        return data

    def stored(self) -> dict[str, Any]:
        """As JSON, in one canonical form: `name` only when there is one, `expected` only
        when it was given (null included)."""
        data = self.model_dump(mode="json")
        if self.name is None:
            del data["name"]
        return data


class SnippetSpec(BaseModel):
    """What a save sends: the snippet without its name (which the URL or flag gives)."""

    model_config = ConfigDict(extra="forbid")

    language: Language
    code: Code
    description: str = Field("", description="Markdown: what it does, for people and agents.")
    input_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema of the inputs; inferred from main when omitted."
    )
    output_schema: OutputSchema = None
    examples: list[Example] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class Snippet(BaseModel):
    """One stored, immutable version of a library snippet."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: int = Field(description="1, 2, ...: every save that changes it adds one.")
    hash: str = Field(description="sha256 of the content (language, code, docs, schemas...).")
    language: Language
    code: str
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    examples: list[Example] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    created_at: datetime.datetime
    examples_passed: int = Field(0, description="How many examples ran and passed on save.")


class SnippetSummary(BaseModel):
    """A library snippet in a listing: its latest version."""

    name: str
    version: int
    language: Language
    description: str
    tags: list[str]


class ExecutionSummary(BaseModel):
    """One recorded execution, as listed."""

    execution_id: str
    snippet: str | None = None
    version: int | None = None
    language: Language
    surface: str = Field(description="http, mcp, cli or api.")
    started_at: datetime.datetime
    duration_ms: float
    ok: bool
    error_type: str | None = None


class ExecutionRecord(ExecutionSummary):
    """One recorded execution with its result (secrets masked) and, for library runs,
    its inputs (never its secrets)."""

    result: ExecutionResult
    inputs: dict[str, Any] | None = None
