"""Agent Mode: a model writes a function-style snippet for a goal; the sandbox runs it.

The loop: ask the model (any OpenAI-compatible Chat Completions endpoint) for a snippet,
given the goal, the input names with their JSON types and short previews, the output
schema and the sandbox rules; run it on the real inputs with `Engine.execute`; send any
error (message, line, failing schema paths) back and ask again, until the result
validates or `max_attempts` run out.  Failures of the model's side become an
``ok: false`` AgentResult carrying the attempts so far, never an exception.

The core only: `coderunner agent` lives in `_cli`, `POST /v1/agent` in `_http`.
"""

from __future__ import annotations

import asyncio
import json
import keyword
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ._engine import Engine, mask_cut_secret, mask_text, mask_value
from ._errors import CodeRunnerError, Saturated
from ._models import (
    SNIPPET_NAME_PATTERN,
    ErrorType,
    ExecutionRequest,
    ExecutionResult,
    Inputs,
    Language,
    MemoryMb,
    OutputSchema,
    Secrets,
    SnippetRef,
    TimeoutMs,
)
from ._settings import env_value

if TYPE_CHECKING:
    import openai

log = logging.getLogger("coderunner.agent")

MAX_ATTEMPTS_LIMIT = 10
_ENV = {
    "base_url": "CODERUNNER_LLM_BASE_URL",
    "api_key": "CODERUNNER_LLM_API_KEY",
    "model": "CODERUNNER_LLM_MODEL",
}
_SCHEMA_CHARS = 16_000  # an output schema is shown whole up to this size
_TRACEBACK_CHARS = 2_000
_OUTPUT_CHARS = 1_000  # of the snippet's stdout / stderr sent back to the model


# -- models ----------------------------------------------------------------------------


class AgentRequest(BaseModel):
    """A goal for the model, the inputs its snippet runs on, and the shape of the result."""

    model_config = ConfigDict(extra="forbid")

    goal: str = Field(min_length=1, max_length=20_000, description="What the snippet must do.")
    language: Language
    inputs: Inputs = Field(default_factory=dict)
    output_schema: OutputSchema = None
    max_attempts: int = Field(
        3, ge=1, le=MAX_ATTEMPTS_LIMIT, description="Snippets the model may write (1-10)."
    )
    timeout_ms: TimeoutMs = None
    memory_mb: MemoryMb = None
    secrets: Secrets = Field(default_factory=dict)
    save_as: str | None = Field(
        None,
        pattern=SNIPPET_NAME_PATTERN,
        description="Store the final snippet in the library under this name: the goal as "
        "its description, this run as its first example.",
    )


class AgentAttempt(BaseModel):
    """One snippet the model wrote and what running it on the real inputs gave."""

    model_config = ConfigDict(extra="forbid")

    code: str
    outcome: ExecutionResult


class AgentUsage(BaseModel):
    """Tokens the model used over the whole agent run."""

    model_config = ConfigDict(extra="forbid")

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class AgentResult(BaseModel):
    """The answer of an agent run: the final snippet, its result, and every attempt."""

    model_config = ConfigDict(extra="forbid")

    ok: bool = Field(description="True when the final snippet returned a valid result.")
    result: Any = Field(None, description="The final snippet's result (null when not ok).")
    code: str | None = Field(
        None, description="The final snippet; re-run it as is through POST /v1/execute."
    )
    language: Language
    attempts: list[AgentAttempt] = Field(default_factory=list)
    model: str
    usage: AgentUsage = Field(default_factory=AgentUsage)
    error: str | None = Field(
        None,
        description="Why the run is not ok; when ok, null unless save_as could not save.",
    )
    saved: SnippetRef | None = Field(
        None, description="With save_as: the library snippet (name, version) it became."
    )


class AgentNotConfigured(CodeRunnerError):
    """No model is configured for Agent Mode; the message names the missing settings."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = list(missing)
        super().__init__(
            "Agent Mode needs a model: set "
            + " and ".join(self.missing)
            + " (an OpenAI-compatible Chat Completions endpoint, e.g. "
            "CODERUNNER_LLM_BASE_URL=http://localhost:11434/v1 and CODERUNNER_LLM_MODEL=...)"
        )


class LLMConfig(BaseModel):
    """Where the model is: an OpenAI-compatible endpoint, its API key and the model name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str | None = Field(None, description="e.g. https://api.openai.com/v1")
    api_key: str | None = Field(None, description="Optional for local servers that need none.")
    model: str | None = None
    timeout_s: float = Field(60.0, gt=0, description="Limit of one model call.")
    max_retries: int = Field(2, ge=0, description="SDK retries on connection errors, 429, 5xx.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LLMConfig:
        """Config from `CODERUNNER_LLM_*` variables, then explicit overrides (not None)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {
            field: value for field, var in _ENV.items() if (value := env_value(environ, var))
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def missing(self) -> list[str]:
        """The environment variable names of the required settings that are unset."""
        return [_ENV[f] for f in ("base_url", "model") if not getattr(self, f)]

    def require(self) -> None:
        """Raise AgentNotConfigured unless a model is configured."""
        if self.missing():
            raise AgentNotConfigured(self.missing())


# -- prompt ----------------------------------------------------------------------------


def json_type(value: Any) -> str:
    """The JSON type of a value with its size, e.g. ``array of 3 objects``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return f"string ({len(value)} characters)"
    if isinstance(value, list):
        kinds = {json_type(v).split(" ")[0] for v in value}
        if len(kinds) == 1:
            kind = kinds.pop()
            kind = {"boolean": "booleans", "null": "nulls", "string": "strings"}.get(kind, kind)
            if not kind.endswith("s"):
                kind += "s"
            return f"array of {len(value)} {kind}"
        return f"array of {len(value)} items"
    if isinstance(value, dict):
        return f"object with {len(value)} keys"
    return type(value).__name__


def preview(value: Any, limit: int) -> str:
    """The value as JSON, cut after `limit` characters (never encodes more than it needs)."""
    out: list[str] = []
    size = 0
    encoder = json.JSONEncoder(ensure_ascii=False)
    chunks: Iterator[str] = encoder.iterencode(value)
    for chunk in chunks:
        out.append(chunk)
        size += len(chunk)
        if size > limit:
            text = "".join(out)[:limit]
            return f"{text}… [truncated to {limit} characters; the snippet gets the whole value]"
    return "".join(out)


def _masked_preview(value: Any, limit: int, secrets: Mapping[str, str] | None) -> str:
    """The preview of a value whose strings have the secrets masked first: cutting the
    preview short can never leave part of a secret, nor can JSON escaping hide one."""
    return preview(mask_value(value, secrets) if secrets else value, limit)


def _mask_cut_secret(text: str, truncated: bool, secrets: Mapping[str, str] | None) -> str:
    return mask_cut_secret(text, secrets) if truncated and secrets else text


def _clip(text: str, limit: int, *, tail: bool = False) -> str:
    if len(text) <= limit:
        return text
    return "…" + text[-limit:] if tail else text[:limit] + "…"


def _signature(language: Language, names: list[str]) -> str:
    plain = all(n.isidentifier() and not keyword.iskeyword(n) for n in names)
    if language is Language.PYTHON:
        if plain:
            return f"def main({', '.join(names)}):"
        return "def main(**inputs):  # inputs['name'] for names that are not identifiers"
    if plain:
        return f"function main({', '.join(names)}) {{ ... }}"
    return "function main({ ...inputs }) { ... }  // inputs['name'] for any name"


_RULES = {
    Language.PYTHON: (
        "Python 3 with its standard library only (json, re, math, statistics, datetime, "
        "zoneinfo, decimal, hashlib, hmac, base64, csv, itertools, collections ...); no "
        "third-party packages. `main` may be async. Return plain JSON values: dict, list, str, "
        "int, float (finite), bool, None - convert datetime, set, bytes, Decimal yourself."
    ),
    Language.JAVASCRIPT: (
        "JavaScript with its standard library only: the language built-ins, the web standard "
        "APIs (crypto.subtle, crypto.randomUUID, TextEncoder, URL, atob, structuredClone, "
        "Intl) and Node built-ins "
        'through require("node:crypto") or import; no npm packages. `main` may be async. '
        "Return plain JSON values: objects, arrays, strings, finite numbers, booleans, null - "
        "no Map, Set, BigInt, NaN, functions or undefined."
    ),
    Language.TYPESCRIPT: (
        "TypeScript (types are stripped, not checked; typed parameters, interfaces and "
        "generics are welcome) with the JavaScript standard library only: the language "
        "built-ins, the web standard APIs (crypto.subtle, crypto.randomUUID, TextEncoder, "
        'URL, atob, structuredClone, Intl) and Node built-ins through require("node:crypto") '
        "or import; no npm packages. `main` may be async. Return plain JSON values: objects, "
        "arrays, strings, finite numbers, booleans, null - no Map, Set, BigInt, NaN, "
        "functions or undefined."
    ),
}


def system_prompt(language: Language, timeout_ms: int, memory_mb: int) -> str:
    """The standing instructions: the sandbox rules and how to answer."""
    fence = language.value
    return (
        f"You write one {language.value} snippet that Code Runner runs in a sandbox on the "
        "caller's inputs.\n\n"
        "Sandbox rules:\n"
        "- Function style: define `main`. Its parameters are bound BY NAME from the inputs. "
        "The return value of `main` is the result; do not print it.\n"
        f"- {_RULES[language]}\n"
        "- No network, no files (only a small empty scratch /tmp), no subprocesses, no "
        "environment variables.\n"
        f"- Each run may take {timeout_ms} ms and {memory_mb} MB of memory.\n"
        "- The inputs you are shown are previews; large values are cut short. Your code gets "
        "the complete values: never hard-code data from the previews.\n\n"
        f'Answer by calling the `submit_code` tool with {{"language": "{language.value}", '
        '"code": "<the whole snippet>"}. If you cannot call tools, answer with the whole '
        f"snippet in one ```{fence} fenced block. When a run fails you are told why; answer "
        "with the whole corrected snippet the same way."
    )


def user_prompt(request: AgentRequest, preview_chars: int) -> str:
    """The task: goal, language, each input's name, JSON type and preview, the schema."""
    names = list(request.inputs) + list(request.secrets)
    secrets = request.secrets
    # A secret's value never reaches the model, not even where the caller pasted it into
    # the goal or an input (the snippet still gets the inputs as they are).
    goal = mask_text(request.goal, secrets)
    parts = [f"Goal: {goal}", f"Language: {request.language.value}"]
    if request.inputs:
        lines = [
            f"- `{name}`: {json_type(value)}; preview: "
            + mask_text(_masked_preview(value, preview_chars, secrets), secrets)
            for name, value in request.inputs.items()
        ]
        parts.append("Inputs (bound to main's parameters by name):\n" + "\n".join(lines))
    else:
        parts.append("Inputs: none.")
    if request.secrets:
        # Only the names: a secret's value never reaches the model.
        parts.append(
            "Secrets (bound to main's parameters by name like inputs; strings whose values "
            "are hidden from you; never print or return them): "
            + ", ".join(f"`{name}`" for name in request.secrets)
        )
    parts.append("Suggested signature: " + _signature(request.language, names))
    if request.output_schema is not None:
        schema = _clip(json.dumps(request.output_schema, indent=1), _SCHEMA_CHARS)
        parts.append(
            "The return value must validate against this JSON Schema (draft 2020-12):\n" + schema
        )
    else:
        parts.append("Return whatever JSON value best achieves the goal.")
    return "\n\n".join(parts)


def feedback(
    outcome: ExecutionResult,
    preview_chars: int,
    note: str = "",
    secrets: Mapping[str, str] | None = None,
) -> str:
    """What went wrong in a run, for the model: type, message, line, schema paths, output."""
    err = outcome.error
    if err is None:  # not reached: feedback is only sent for failed runs
        return "The snippet ran but its result was not accepted."
    head = f"The snippet failed: {err.type.value}"
    if err.name:
        head += f" ({err.name})"
    if err.line:
        head += f" at line {err.line}"
    lines = [head + ".", f"Message: {err.message}"]
    if err.type is ErrorType.SCHEMA_ERROR:
        lines.append("The failing paths are listed above. The value returned was: ")
        lines[-1] += _masked_preview(outcome.result, preview_chars, secrets)
    if err.traceback:
        lines.append("Traceback:\n" + _clip(err.traceback, _TRACEBACK_CHARS, tail=True))
    if outcome.stderr:
        stderr = _mask_cut_secret(outcome.stderr, outcome.stderr_truncated, secrets)
        lines.append("stderr:\n" + _clip(stderr, _OUTPUT_CHARS, tail=True))
    if outcome.stdout:
        stdout = _mask_cut_secret(outcome.stdout, outcome.stdout_truncated, secrets)
        lines.append("stdout:\n" + _clip(stdout, _OUTPUT_CHARS, tail=True))
    if note:
        lines.append(note)
    lines.append("Fix the snippet and submit the whole corrected snippet.")
    # The result, the messages and the output may hold a secret, exact or escaped: the
    # model never sees one.
    return mask_text("\n".join(lines), secrets or {})


def submit_code_tool(language: Language) -> dict[str, Any]:
    """The `submit_code` function tool the model answers with."""
    return {
        "type": "function",
        "function": {
            "name": "submit_code",
            "description": "Run the whole snippet in the sandbox on the real inputs.",
            "parameters": {
                "type": "object",
                "properties": {
                    "language": {"type": "string", "enum": [language.value]},
                    "code": {"type": "string", "description": "The whole snippet."},
                },
                "required": ["language", "code"],
                "additionalProperties": False,
            },
        },
    }


# -- the model's answer ----------------------------------------------------------------


class ModelError(Exception):
    """The model's side failed; the message says how (ends the run with ok: false)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the endpoint's HTTP status, when it answered one


_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_TAGS = {
    Language.PYTHON: {"python", "py", "python3"},
    Language.JAVASCRIPT: {"javascript", "js", "mjs", "node", "ecmascript"},
    Language.TYPESCRIPT: {"typescript", "ts", "mts"},
}


def fenced_code(content: str, language: Language) -> str | None:
    """The snippet in a fenced code block: one tagged with the language first, with `main`."""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(content) if body.strip()]
    ranked: list[str] = [b for t, b in blocks if t in _TAGS[language]]
    ranked += [b for t, b in blocks if not t]
    ranked = ranked or [b for _, b in blocks]
    for body in ranked:
        if "main" in body:
            return body.strip("\n")
    return ranked[0].strip("\n") if ranked else None


@dataclass(frozen=True)
class _Answer:
    """Code read from one completion, and the message that records it in the dialogue."""

    code: str
    message: dict[str, Any]
    tool_call_id: str | None  # set when the code came in a submit_code call
    language: str  # the language the model said it wrote


def read_answer(completion: Any, language: Language) -> _Answer:
    """Code from a completion: a `submit_code` call, else a fenced block (else ModelError)."""
    try:
        message = completion.choices[0].message
        content = message.content
        tool_calls = message.tool_calls or []
    except Exception:
        try:
            seen = completion.to_json(indent=None)
        except Exception:
            seen = repr(completion)
        raise ModelError(
            "the model endpoint's answer is malformed: a chat completion needs "
            f"choices[0].message, it sent {_clip(seen, 300)}"
        ) from None
    for call in tool_calls:
        function = getattr(call, "function", None)
        if getattr(function, "name", None) != "submit_code":
            continue
        assert function is not None  # it has the name submit_code
        try:
            args = json.loads(function.arguments)
            code = args["code"]
            if not isinstance(code, str) or not code.strip():
                raise ValueError("no code")
        except Exception:
            raise ModelError(
                "the model called submit_code with arguments that are not a JSON object with "
                f"a non-empty 'code' string: {_clip(str(function.arguments), 300)}"
            ) from None
        submitted = args.get("language") if isinstance(args.get("language"), str) else ""
        record = {
            "role": "assistant",
            "content": content,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "submit_code", "arguments": function.arguments},
                }
            ],
        }
        return _Answer(code, record, call.id, submitted or language.value)
    if isinstance(content, str):
        code = fenced_code(content, language)
        if code:
            return _Answer(code, {"role": "assistant", "content": content}, None, language.value)
    said = _clip(content, 300) if isinstance(content, str) and content else "nothing"
    raise ModelError(
        f"the model answered without code (no submit_code call, no fenced code block): {said}"
    )


def _describe_api_error(exc: Exception, llm: LLMConfig) -> str:
    import openai

    where = llm.base_url
    if isinstance(exc, openai.APITimeoutError):
        return f"the model endpoint {where} did not answer within {llm.timeout_s:g} s"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f": {cause}" if cause else ""
        return f"cannot reach the model endpoint {where}{detail}"
    if isinstance(exc, openai.APIStatusError):
        hint = ""
        if exc.status_code in (401, 403):
            hint = "; check CODERUNNER_LLM_API_KEY"
        elif exc.status_code == 404:
            hint = "; check CODERUNNER_LLM_BASE_URL (often ends in /v1) and CODERUNNER_LLM_MODEL"
        return (
            f"the model endpoint {where} answered HTTP {exc.status_code}: "
            f"{_clip(exc.message, 500)}{hint}"
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return f"the model endpoint {where} answered something that is not a chat completion"
    return f"the model endpoint {where} failed: {type(exc).__name__}: {_clip(str(exc), 500)}"


async def _complete(
    client: openai.AsyncOpenAI, llm: LLMConfig, messages: list[dict[str, Any]], tools: Any
) -> Any:
    """One chat completion; any failure of the endpoint becomes ModelError."""
    import openai

    kwargs: dict[str, Any] = {"model": llm.model, "messages": messages}
    if tools is not None:
        kwargs["tools"] = tools
    try:
        return await client.chat.completions.create(**kwargs)
    except openai.OpenAIError as exc:
        status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
        raise ModelError(_describe_api_error(exc, llm), status) from exc
    except ValueError as exc:  # e.g. a body that is not JSON
        raise ModelError(
            f"the model endpoint {llm.base_url} answered something that is not a chat "
            f"completion (not JSON: {_clip(str(exc), 300)})"
        ) from exc


def _add_usage(usage: AgentUsage, completion: Any) -> None:
    seen = getattr(completion, "usage", None)
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = getattr(seen, name, None)
        if isinstance(value, int):
            setattr(usage, name, getattr(usage, name) + value)


# -- the loop --------------------------------------------------------------------------


async def run_agent(
    engine: Engine,
    request: AgentRequest,
    llm: LLMConfig,
    *,
    preview_chars: int | None = None,
    time_budget_s: float | None = None,
) -> AgentResult:
    """Have the model write a snippet for the goal and run it until it validates.

    Raises AgentNotConfigured without a model and InvalidRequest for limits or a schema
    the engine refuses (both before the model is asked); every other failure is a result.
    """
    llm.require()
    settings = engine.settings
    preview_chars = settings.agent_preview_chars if preview_chars is None else preview_chars
    time_budget_s = settings.agent_timeout_s if time_budget_s is None else time_budget_s
    probe = ExecutionRequest(
        language=request.language,
        code="",
        inputs=request.inputs,
        secrets=request.secrets,
        timeout_ms=request.timeout_ms,
        memory_mb=request.memory_mb,
        output_schema=request.output_schema,
    )
    timeout_ms, memory_mb, _ = engine.check_request(probe)

    import openai

    answer = AgentResult(ok=False, language=request.language, model=str(llm.model))
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system_prompt(request.language, timeout_ms, memory_mb)},
        {"role": "user", "content": user_prompt(request, preview_chars)},
    ]
    tools: list[dict[str, Any]] | None = [submit_code_tool(request.language)]
    deadline = asyncio.get_running_loop().time() + time_budget_s
    client = openai.AsyncOpenAI(
        base_url=llm.base_url,
        api_key=llm.api_key or "not-needed",  # local servers often need none
        timeout=llm.timeout_s,
        max_retries=llm.max_retries,
    )
    try:
        async with client, asyncio.timeout_at(deadline):
            for number in range(1, request.max_attempts + 1):
                try:
                    completion = await _complete(client, llm, messages, tools)
                except ModelError as exc:
                    if number > 1 or tools is None or exc.status not in (400, 422):
                        raise
                    # Some OpenAI-compatible servers refuse `tools`: ask for a fenced block.
                    log.info("model call with tools failed; retrying without tools")
                    tools = None
                    completion = await _complete(client, llm, messages, tools)
                _add_usage(answer.usage, completion)
                reply = read_answer(completion, request.language)
                outcome = await engine.execute(probe.model_copy(update={"code": reply.code}))
                answer.attempts.append(AgentAttempt(code=reply.code, outcome=outcome))
                answer.code = reply.code
                log.info(
                    "agent attempt %d/%d: %s",
                    number,
                    request.max_attempts,
                    "ok" if outcome.ok else outcome.error.type.value,  # type: ignore[union-attr]
                )
                if outcome.ok:
                    answer.ok, answer.result = True, outcome.result
                    return answer
                note = ""
                if reply.language != request.language.value:
                    note = f"Note: this task is in {request.language.value}, not {reply.language}."
                text = feedback(outcome, preview_chars, note, request.secrets)
                messages.append(reply.message)
                if reply.tool_call_id is not None:
                    messages.append(
                        {"role": "tool", "tool_call_id": reply.tool_call_id, "content": text}
                    )
                else:
                    messages.append({"role": "user", "content": text})
            last = answer.attempts[-1].outcome.error
            why = f"{last.type.value}: {_clip(last.message, 300)}" if last else "no result"
            answer.error = (
                f"no valid result after {request.max_attempts} attempt(s); "
                f"the last failed with {why}"
            )
    except ModelError as exc:
        answer.error = str(exc)
    except TimeoutError:
        answer.error = (
            f"the agent run went over its time budget of {time_budget_s:g} s "
            f"after {len(answer.attempts)} attempt(s)"
        )
    except Saturated as exc:
        answer.error = f"the sandbox is saturated: {exc}"
    return answer
