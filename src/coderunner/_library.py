"""The snippet library and the execution history.

A snippet is promoted from a one-off to a named library step: versioned (every save that
changes it is a new immutable version), documented (description, input and output
schemas), and tested (a save runs its examples and is refused unless they pass).
Workflows and agents then run it by name.  Every execution a front-end serves is
recorded in the history (`record`), so a failed run can be found again; secrets never
are.  The store is SQLite in the data directory, or PostgreSQL (`database_url`).

`Library` is the one object the front-ends (HTTP, MCP, the CLI) use for all of this.
It never stops plain executions: when its database is down, library calls raise
`StoreUnavailable` (HTTP 503) and history records are dropped (and counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonschema.validators import Draft202012Validator

from ._agent import AgentRequest, AgentResult
from ._engine import Engine, mask_text, mask_value, new_execution_id
from ._errors import ExamplesFailed, InvalidRequest, NotFound, StoreUnavailable
from ._inspect import Inspection, inspect_snippet
from ._models import (
    RESERVED_NAME_PREFIX,
    SNIPPET_NAME_PATTERN,
    ErrorDetail,
    ErrorType,
    Example,
    ExecutionRecord,
    ExecutionRequest,
    ExecutionResult,
    ExecutionSummary,
    Language,
    Snippet,
    SnippetRef,
    SnippetSpec,
    SnippetSummary,
)
from ._schema import compile_schema
from ._settings import Settings, resolved_data_dir

if TYPE_CHECKING:  # SQLAlchemy and Alembic load when a library is opened, not on import
    from ._store import HistoryWriter, NewVersion, Store

log = logging.getLogger("coderunner.library")

_NAME = re.compile(SNIPPET_NAME_PATTERN)
# A store that could not be opened is tried again at most this often.
_REOPEN_INTERVAL_S = 2.0
EXTENSIONS = {Language.PYTHON: ".py", Language.JAVASCRIPT: ".js", Language.TYPESCRIPT: ".ts"}


def check_name(name: str) -> None:
    """InvalidRequest unless `name` is a valid, unreserved snippet name."""
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"name {name!r} is not a valid snippet name: lowercase letters, digits, '-' and "
            "'_', starting with a letter, at most 63 characters (e.g. normalize-phone)"
        )
    if name.startswith(RESERVED_NAME_PREFIX):
        raise InvalidRequest(
            f"name {name!r} is reserved: names starting with {RESERVED_NAME_PREFIX!r} are "
            "the built-in tools'"
        )


def _new_version(
    name: str, spec: SnippetSpec, input_schema: dict[str, Any], digest: str
) -> NewVersion:
    """The version a save of `spec` stores (its examples all passed)."""
    from ._store import NewVersion

    return NewVersion(
        name=name,
        language=spec.language,
        code=spec.code,
        description=spec.description,
        input_schema=input_schema,
        output_schema=spec.output_schema,
        examples=spec.examples,
        tags=spec.tags,
        hash=digest,
        examples_passed=len(spec.examples),
    )


def content_hash(name: str, spec: SnippetSpec, input_schema: dict[str, Any]) -> str:
    """sha256 of everything a version holds, in canonical JSON."""
    content = {
        "name": name,
        "language": spec.language.value,
        "code": spec.code,
        "description": spec.description,
        "input_schema": input_schema,
        "output_schema": spec.output_schema,
        "examples": [e.stored() for e in spec.examples],
        "tags": spec.tags,
    }
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: 2 and 2.0 are the same number; true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _schema_validator(schema: dict[str, Any], field: str) -> Draft202012Validator:
    try:
        return compile_schema(schema)
    except InvalidRequest as exc:
        raise InvalidRequest(str(exc).replace("output_schema", field, 1)) from None


def input_problems(validator: Draft202012Validator, inputs: Mapping[str, Any]) -> list[str]:
    """Every path of the inputs that does not fit the schema, with why."""
    problems = []
    for error in sorted(validator.iter_errors(dict(inputs)), key=lambda e: list(map(str, e.path))):
        where = "inputs" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        problems.append(f"{where}: {error.message}")
    return problems


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


class Library:
    """The snippet library and history of one service, over one store.

    Args:
        engine: runs the snippets (examples on save, library runs).
        settings: where the store is (`data_dir`, `database_url`) and `history_limit`;
            the engine's settings when omitted.
    """

    def __init__(self, engine: Engine, settings: Settings | None = None) -> None:
        from ._store import database_url_for

        self.engine = engine
        self.settings = settings or engine.settings
        try:
            self.url = database_url_for(
                self.settings.database_url, resolved_data_dir(self.settings)
            )
        except ValueError as exc:
            raise InvalidRequest(f"database_url: {exc}") from None
        self._store: Store | None = None
        self._history: HistoryWriter | None = None
        self._opening = asyncio.Lock()
        self._last_attempt = -math.inf
        self._reopening: asyncio.Future[None] | None = None
        self.problem: str | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store now if it can be (a store that is down is retried on use)."""
        try:
            await self._get_store()
        except StoreUnavailable as exc:
            log.warning("the library's store is unavailable: %s", exc)

    async def aclose(self) -> None:
        """Write what the history still holds, then close the store."""
        if self._history is not None:
            await asyncio.to_thread(self._history.close)
            self._history = None
        if self._store is not None:
            self._store.close()
            self._store = None

    async def __aenter__(self) -> Library:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _get_store(self) -> Store:
        if self._store is not None:
            return self._store
        async with self._opening:
            if self._store is not None:
                return self._store
            if time.monotonic() - self._last_attempt < _REOPEN_INTERVAL_S and self.problem:
                raise StoreUnavailable(self.problem)
            self._last_attempt = time.monotonic()
            from ._store import HistoryWriter, Store

            try:
                store = await asyncio.to_thread(
                    Store.open, self.url, history_limit=self.settings.history_limit
                )
            except StoreUnavailable as exc:
                self.problem = str(exc)
                raise
            self.problem = None
            self._store = store
            self._history = HistoryWriter(store)
            log.info("library store: %s", store.url)
            return store

    async def check(self) -> None:
        """StoreUnavailable unless the store answers now (readiness)."""
        store = await self._get_store()
        await asyncio.to_thread(store.ping)

    # -- history --------------------------------------------------------------------------

    def record(
        self,
        request: ExecutionRequest,
        result: ExecutionResult,
        *,
        surface: str,
        inputs: Mapping[str, Any] | None = None,
    ) -> None:
        """Add one execution to the history (never blocks; dropped if the store is down).

        `inputs` is kept for library runs only; secrets are never recorded, and the
        result already has them masked.
        """
        if self._history is None:
            self._reopen_soon()  # a store that was down when we started may be back
            return
        if any(request.secrets.values()):
            result.decode_result()  # masked below: the history keeps no secret
        if any(request.secrets.values()) and result.result is not None:
            # The answer went out as it was (a schema_error's too, which keeps the value
            # that failed); the history never keeps a secret.
            result = result.model_copy(
                update={"result": mask_value(result.result, request.secrets)}
            )
        now = datetime.datetime.now(datetime.UTC)
        started = now - datetime.timedelta(milliseconds=result.duration_ms)
        self._history.submit(
            ExecutionRecord(
                execution_id=result.execution_id,
                snippet=result.snippet.name if result.snippet else None,
                version=result.snippet.version if result.snippet else None,
                language=request.language,
                surface=surface,
                started_at=started,
                duration_ms=result.duration_ms,
                ok=result.ok,
                error_type=result.error.type.value if result.error else None,
                result=result,
                inputs=dict(inputs) if inputs is not None else None,
            )
        )

    def _reopen_soon(self) -> None:
        """Try to open the store in the background (at most every few seconds)."""
        if self._reopening is not None and not self._reopening.done():
            return
        if time.monotonic() - self._last_attempt < _REOPEN_INTERVAL_S:
            return

        async def reopen() -> None:
            with contextlib.suppress(StoreUnavailable):
                await self._get_store()

        self._reopening = asyncio.ensure_future(reopen())

    async def executions(
        self, *, snippet: str | None = None, limit: int = 50
    ) -> list[ExecutionSummary]:
        """The most recent executions first, of one snippet or of all."""
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit must be between 1 and 1000")
        store = await self._get_store()
        await self.flush_history()
        return await asyncio.to_thread(store.executions, snippet=snippet, limit=limit)

    async def execution(self, execution_id: str) -> ExecutionRecord:
        """One recorded execution with its result (NotFound when unknown or pruned)."""
        store = await self._get_store()
        await self.flush_history()
        record = await asyncio.to_thread(store.execution, execution_id)
        if record is None:
            raise NotFound(f"no execution {execution_id!r} in the history")
        return record

    @property
    def history_counts(self) -> dict[str, int]:
        """Executions written to the history, and dropped (the store was down or slow)."""
        if self._history is None:
            return {"written": 0, "dropped": 0}
        return {"written": self._history.written, "dropped": self._history.dropped}

    async def flush_history(self) -> None:
        """Wait until every execution recorded so far is in the store."""
        if self._history is not None:
            await asyncio.to_thread(self._history.flush)

    # -- snippets ------------------------------------------------------------------------

    def inspect(self, code: str, language: Language) -> Inspection | ErrorDetail:
        """Parameters and input schema of `main` (the code is parsed, never run)."""
        return inspect_snippet(code, language)

    async def save(self, name: str, spec: SnippetSpec) -> tuple[Snippet, bool]:
        """Store a new version when anything changed, after its examples pass.

        Returns (the stored version, whether it is new).  InvalidRequest for a bad name,
        code without `main`, an invalid schema; ExamplesFailed naming each failing
        example; StoreUnavailable when the store is down.
        """
        check_name(name)
        input_schema = self._input_schema(spec)
        output_validator = (
            _schema_validator(spec.output_schema, "output_schema") if spec.output_schema else None
        )
        del output_validator  # checked here; the engine applies it on every run
        digest = content_hash(name, spec, input_schema)
        store = await self._get_store()
        latest = await asyncio.to_thread(store.get, name)
        if latest is not None and latest.hash == digest:
            return latest, False
        failures = await self._failing_examples(spec, input_schema)
        if failures:
            lines = [f"example {f['example']}{_label(f)}: {f['reason']}" for f in failures]
            raise ExamplesFailed(
                f"{len(failures)} of {len(spec.examples)} example(s) failed, so nothing was "
                "saved:\n" + "\n".join(lines),
                failures,
            )
        version = _new_version(name, spec, input_schema, digest)
        return await asyncio.to_thread(functools.partial(store.save, **vars(version)))

    def _input_schema(self, spec: SnippetSpec) -> dict[str, Any]:
        inspection = inspect_snippet(spec.code, spec.language)
        if isinstance(inspection, ErrorDetail):
            where = f" (line {inspection.line})" if inspection.line else ""
            raise InvalidRequest(f"code: {inspection.message}{where}")
        if not inspection.has_main:
            raise InvalidRequest(
                "code: a library snippet is function style: define main(...), whose "
                "parameters are its inputs (script-style code cannot be saved)"
            )
        if spec.input_schema is None:
            return inspection.input_schema
        _schema_validator(spec.input_schema, "input_schema")
        return spec.input_schema

    async def _failing_examples(
        self, spec: SnippetSpec, input_schema: dict[str, Any]
    ) -> list[dict[str, Any]]:
        validator = _schema_validator(input_schema, "input_schema")
        outcomes = await asyncio.gather(
            *(self._check_example(spec, validator, e) for e in spec.examples)
        )
        return [
            {"example": i + 1, "name": e.name, "reason": reason}
            for i, (e, reason) in enumerate(zip(spec.examples, outcomes, strict=True))
            if reason is not None
        ]

    async def _check_example(
        self, spec: SnippetSpec, validator: Draft202012Validator, example: Example
    ) -> str | None:
        """Why the example fails, or None when it passes."""
        problems = input_problems(validator, example.inputs)
        if problems:
            return "its inputs do not fit input_schema: " + "; ".join(problems)
        result = await self.engine.execute(
            ExecutionRequest(
                language=spec.language,
                code=spec.code,
                inputs=example.inputs,
                output_schema=spec.output_schema,
            )
        )
        if not result.ok:
            assert result.error is not None
            error = result.error
            where = f" at line {error.line}" if error.line else ""
            name = f" {error.name}" if error.name else ""
            return f"{error.type.value}{name}{where}: {error.message}"
        if example.has_expected and not json_equal(result.result, example.expected):
            return f"returned {_short(result.result)}, expected {_short(example.expected)}"
        return None

    async def get(self, name: str, version: int | None = None) -> Snippet:
        """The latest version, or version `version` (NotFound when there is none)."""
        store = await self._get_store()
        snippet = await asyncio.to_thread(store.get, name, version)
        if snippet is None:
            if version is not None and await asyncio.to_thread(store.get, name) is not None:
                raise NotFound(f"snippet {name!r} has no version {version}")
            raise NotFound(f"no snippet named {name!r} in the library")
        return snippet

    async def versions(self, name: str) -> list[Snippet]:
        """Every version, newest first (NotFound for an unknown name)."""
        store = await self._get_store()
        found = await asyncio.to_thread(store.versions, name)
        if not found:
            raise NotFound(f"no snippet named {name!r} in the library")
        return found

    async def search(self, q: str | None = None) -> list[SnippetSummary]:
        """The latest version of every snippet whose name, description or tags match."""
        store = await self._get_store()
        return await asyncio.to_thread(store.search, q)

    async def delete(self, name: str) -> None:
        """Remove a snippet and all its versions (NotFound when unknown)."""
        store = await self._get_store()
        if not await asyncio.to_thread(store.delete, name):
            raise NotFound(f"no snippet named {name!r} in the library")

    async def run(
        self,
        name: str,
        *,
        inputs: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        version: int | None = None,
        timeout_ms: int | None = None,
        memory_mb: int | None = None,
        surface: str = "api",
    ) -> ExecutionResult:
        """Run a library snippet by name and record the run in the history.

        Inputs (with the secrets, which bind like inputs) that do not fit the snippet's
        input_schema are an `input_error` listing every failing path, before anything
        runs; the result is checked against its output_schema.
        """
        inputs = dict(inputs or {})
        secrets = dict(secrets or {})
        snippet = await self.get(name, version)
        ref = SnippetRef(name=snippet.name, version=snippet.version)
        request = ExecutionRequest(
            language=snippet.language,
            code=snippet.code,
            inputs=inputs,
            secrets=secrets,
            timeout_ms=timeout_ms,
            memory_mb=memory_mb,
            output_schema=snippet.output_schema,
        )
        problems = input_problems(compile_schema(snippet.input_schema), {**inputs, **secrets})
        if problems:
            self.engine.check_request(request)  # limits refused as for any request
            message = f"the inputs do not fit {name}'s input_schema:\n" + "\n".join(problems)
            result = ExecutionResult(
                ok=False,
                language=snippet.language,
                error=ErrorDetail(type=ErrorType.INPUT_ERROR, message=mask_text(message, secrets)),
                execution_id=new_execution_id(),
                snippet=ref,
            )
        else:
            result = await self.engine.execute(request)
            result.snippet = ref
        self.record(request, result, surface=surface, inputs=inputs)
        return result

    async def test(self, name: str, version: int | None = None) -> list[dict[str, Any]]:
        """Run a stored version's examples again: [{example, name, ok, reason}]."""
        snippet = await self.get(name, version)
        spec = SnippetSpec(
            language=snippet.language,
            code=snippet.code,
            output_schema=snippet.output_schema,
            examples=snippet.examples,
        )
        validator = _schema_validator(snippet.input_schema, "input_schema")
        reasons = await asyncio.gather(
            *(self._check_example(spec, validator, e) for e in snippet.examples)
        )
        return [
            {"example": i + 1, "name": e.name, "ok": reason is None, "reason": reason}
            for i, (e, reason) in enumerate(zip(snippet.examples, reasons, strict=True))
        ]

    async def save_agent_result(self, request: AgentRequest, answer: AgentResult) -> None:
        """Agent Mode's `save_as`: the final snippet becomes a library step, the goal its
        description and this run (its inputs and result) its first example.

        Sets `answer.saved`; a save that fails leaves the answer ok but says why in
        `answer.error`.  With secrets, the example cannot be stored (secrets never are,
        and the run needs them): the snippet is saved without it.
        """
        assert request.save_as is not None and answer.code is not None
        examples = []
        if not request.secrets:
            examples = [Example(name="agent run", inputs=request.inputs, expected=answer.result)]
        spec = SnippetSpec(
            language=request.language,
            code=answer.code,
            description=request.goal,
            output_schema=request.output_schema,
            examples=examples,
            tags=["agent"],
        )
        try:
            snippet, _ = await self.save(request.save_as, spec)
        except (InvalidRequest, StoreUnavailable) as exc:
            answer.error = f"the snippet works but was not saved as {request.save_as!r}: {exc}"
            return
        answer.saved = SnippetRef(name=snippet.name, version=snippet.version)

    # -- export / import -------------------------------------------------------------------

    async def export(self, directory: str | os.PathLike[str]) -> list[str]:
        """Write the latest version of every snippet as NAME.py|.js + NAME.json."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for summary in await self.search():
            snippet = await self.get(summary.name)
            code_file = folder / f"{snippet.name}{EXTENSIONS[snippet.language]}"
            code_file.write_text(snippet.code)
            meta = {
                "name": snippet.name,
                "language": snippet.language.value,
                "description": snippet.description,
                "input_schema": snippet.input_schema,
                "output_schema": snippet.output_schema,
                "examples": [e.stored() for e in snippet.examples],
                "tags": snippet.tags,
                "version": snippet.version,
                "hash": snippet.hash,
            }
            text = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
            (folder / f"{snippet.name}.json").write_text(text)
            names.append(snippet.name)
        return names

    async def import_(self, directory: str | os.PathLike[str]) -> list[tuple[Snippet, bool]]:
        """Save every snippet of an exported folder, all or nothing.

        Every file is read and checked, and every snippet's examples run, before anything
        is stored: a corrupt folder (a missing code file, bad JSON, a bad name, an invalid
        schema, failing examples, what the database cannot store) is refused whole with
        InvalidRequest naming each problem.  Then every snippet is saved (a new version when
        it changed) in ONE database transaction: a failure there (StoreUnavailable) stores
        none of them either.
        """
        from ._store import check_storable

        folder = Path(directory)
        if not folder.is_dir():
            raise InvalidRequest(f"{folder} is not a directory")
        specs: list[tuple[str, SnippetSpec]] = []
        problems: list[str] = []
        metas = sorted(folder.glob("*.json"))
        if not metas:
            raise InvalidRequest(f"{folder} holds no snippet (no NAME.json files)")
        for meta_file in metas:
            try:
                specs.append(self._read_exported(meta_file))
            except (InvalidRequest, OSError, ValueError) as exc:
                problems.append(f"{meta_file.name}: {exc}")
        versions: list[NewVersion] = []
        for name, spec in specs:
            try:
                input_schema = self._input_schema(spec)
                if spec.output_schema:
                    _schema_validator(spec.output_schema, "output_schema")
                version = _new_version(
                    name, spec, input_schema, content_hash(name, spec, input_schema)
                )
                check_storable(version)
                failures = await self._failing_examples(spec, input_schema)
            except InvalidRequest as exc:
                problems.append(f"{name}: {exc}")
                continue
            problems += [
                f"{name}: example {f['example']}{_label(f)}: {f['reason']}" for f in failures
            ]
            versions.append(version)
        if problems:
            raise InvalidRequest(f"nothing was imported from {folder}: " + "; ".join(problems))
        store = await self._get_store()
        try:
            return await asyncio.to_thread(store.save_many, versions)
        except InvalidRequest as exc:  # checked above; the store checks again
            raise InvalidRequest(f"nothing was imported from {folder}: {exc}") from None
        except StoreUnavailable as exc:
            raise StoreUnavailable(f"nothing was imported from {folder}: {exc}") from exc

    def _read_exported(self, meta_file: Path) -> tuple[str, SnippetSpec]:
        meta = json.loads(meta_file.read_text())
        if not isinstance(meta, dict):
            raise InvalidRequest("not a JSON object")
        name = meta.get("name", meta_file.stem)
        if name != meta_file.stem:
            raise InvalidRequest(f"names {name!r}, but the file is {meta_file.stem}.json")
        check_name(name)
        language = Language(meta.get("language"))
        code_file = meta_file.with_suffix(EXTENSIONS[language])
        if not code_file.is_file():
            raise InvalidRequest(f"its code file {code_file.name} is missing")
        fields = {k: meta[k] for k in ("description", "input_schema", "output_schema",
                                       "examples", "tags") if k in meta}  # fmt: skip
        try:
            spec = SnippetSpec(language=language, code=code_file.read_text(), **fields)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        return name, spec


def _label(failure: Mapping[str, Any]) -> str:
    return f" ({failure['name']!r})" if failure.get("name") else ""
