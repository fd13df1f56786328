"""Secrets on every surface, as docs/reference.md#secrets promises them: bound like inputs,
masked as *** in stdout, stderr and error messages, never stored, never logged (not even
with --log-inputs), never shown to a model in Agent Mode.

test_http_library.py covers plain HTTP executions and library runs, test_agent.py an agent
that succeeds at its first attempt; this file covers the rest: a real `coderunner serve
--log-inputs`, agents whose first attempt fails (in process, over HTTP, on the command
line), `save_as` with secrets, the CLI flags, MCP over stdio and over HTTP, and masking in
every kind of error message.  Real servers, real jails; the model is tests/_fake_llm.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from _fake_llm import FakeLLM, Reply, tool_call
from _server import CODERUNNER, SMALL_POOLS, ServerProcess, running_server
from coderunner import Engine, ExecutionRequest
from coderunner._agent import AgentRequest, LLMConfig, run_agent
from conftest import threaded_engine

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parent.parent
PY, JS = "python", "javascript"
LANGUAGES = [PY, JS]

# No 8-character run of it occurs anywhere else, so a fragment of it is a leak.
SECRET = "whsec_Q7v2Lr9XkT3zP8n4"
INPUT = "visible-input-4d1c"  # an input next to the secret: logged with --log-inputs
BODY = "hello"
SIG = hmac.new(SECRET.encode(), BODY.encode(), "sha256").hexdigest()
DIGEST = hashlib.sha256(SECRET.encode()).hexdigest()


def fragments(secret: str, size: int = 8) -> list[str]:
    """Every run of `size` characters of the secret."""
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def assert_no_leak(text: str, secret: str = SECRET) -> None:
    """Not the secret, nor any 8-character piece of it (escaped, cut short or whole)."""
    found = [f for f in fragments(secret) if f in text]
    assert not found, f"the secret leaks ({found[0]!r}): ...{text[-3000:]}"


# Prints the secret to stdout and stderr, then raises with it in the message.
LEAKY = {
    PY: "import sys\n"
    "def main(payload, key):\n"
    "    print('payload', payload, 'key', key)\n"
    "    print('err', key, file=sys.stderr)\n"
    "    raise ValueError('bad key ' + key)",
    JS: "function main(payload, key) {\n"
    "  console.log('payload ' + payload + ' key ' + key);\n"
    "  console.error('err ' + key);\n"
    "  throw new Error('bad key ' + key);\n"
    "}",
}
# Sees the value (its SHA-256 comes back), prints it (masked).
DIGESTS = {
    PY: "import hashlib\n"
    "def main(key):\n"
    "    print('got', key)\n"
    "    return hashlib.sha256(key.encode()).hexdigest()",
    JS: "async function main(key) {\n"
    "  console.log('got ' + key);\n"
    "  const d = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(key));\n"
    "  return [...new Uint8Array(d)].map(b => b.toString(16).padStart(2, '0')).join('');\n"
    "}",
}
# Agent Mode: the snippet that works (HMAC of the body with the key; prints the key).
SIGN = {
    PY: "import hmac, hashlib\n"
    "def main(body, key):\n"
    "    print('signing with', key)\n"
    "    return {'sig': hmac.new(key.encode(), body.encode(), hashlib.sha256).hexdigest()}",
    JS: "async function main(body, key) {\n"
    "  console.log('signing with ' + key);\n"
    "  const k = await crypto.subtle.importKey('raw', new TextEncoder().encode(key),"
    " {name: 'HMAC', hash: 'SHA-256'}, false, ['sign']);\n"
    "  const s = await crypto.subtle.sign('HMAC', k, new TextEncoder().encode(body));\n"
    "  return {sig: [...new Uint8Array(s)].map(b => b.toString(16).padStart(2, '0'))"
    ".join('')};\n"
    "}",
}
SIG_SCHEMA = {
    "type": "object",
    "properties": {"sig": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
    "required": ["sig"],
    "additionalProperties": False,
}
GOAL = "Sign the body with the key (HMAC-SHA256, hex)."
PREVIEW_CHARS = 200
# x's before the secret in a result whose preview ('{"sig": "xx...') is cut right before
# the secret's last character.
CUT_XS = PREVIEW_CHARS - len('{"sig": "') - len(SECRET) + 1
# First attempts that fail, each with the secret where the feedback would show it.
FIRST_ATTEMPTS = {
    # runtime_error: in stdout, stderr, the message and the traceback
    "raises": {
        PY: "import sys\n"
        "def main(body, key):\n"
        "    print('signing with', key)\n"
        "    print('stderr', key, file=sys.stderr)\n"
        "    raise ValueError('rejected key ' + key)",
        JS: "function main(body, key) {\n"
        "  console.log('signing with ' + key);\n"
        "  console.error('stderr ' + key);\n"
        "  throw new Error('rejected key ' + key);\n"
        "}",
    },
    # schema_error: in the failing paths and in the returned value shown back
    "schema": {
        PY: "def main(body, key):\n    return {'sig': key, 'echo': [body, key]}",
        JS: "function main(body, key) {\n  return { sig: key, echo: [body, key] };\n}",
    },
    # schema_error: a long value whose preview is cut inside the secret
    "cut": {
        PY: f"def main(body, key):\n    return {{'sig': 'x' * {CUT_XS} + key}}",
        JS: f"function main(body, key) {{\n  return {{ sig: 'x'.repeat({CUT_XS}) + key }};\n}}",
    },
}


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    """One fake model for the module's server; each test gives it its script."""
    with FakeLLM([]) as fake:
        yield fake


def script(fake: FakeLLM, replies: list[Reply]) -> None:
    fake.requests.clear()
    fake.script[:] = replies


@pytest.fixture(scope="module")
def server(llm: FakeLLM) -> Iterator[ServerProcess]:
    """A real `coderunner serve --log-inputs` with Agent Mode on the fake model."""
    env = {
        "CODERUNNER_LLM_BASE_URL": llm.base_url,
        "CODERUNNER_LLM_API_KEY": llm.api_key,
        "CODERUNNER_LLM_MODEL": "fake-model",
    }
    with running_server(*SMALL_POOLS, "--log-inputs", env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=120) as c:
        # Ready: the library is open (executions before that are not in the history).
        deadline = time.monotonic() + 60
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, c.get("/readyz").text
            time.sleep(0.1)
        yield c


@pytest.fixture(scope="module")
def engine() -> Iterator[tuple[asyncio.AbstractEventLoop, Engine]]:
    """One engine on its own event-loop thread, for the in-process tests."""
    with threaded_engine() as loop_and_engine:
        yield loop_and_engine


def execute(engine: tuple[asyncio.AbstractEventLoop, Engine], request: ExecutionRequest) -> Any:
    loop, eng = engine
    return asyncio.run_coroutine_threadsafe(eng.execute(request), loop).result(60)


def agent(engine: tuple[asyncio.AbstractEventLoop, Engine], fake: FakeLLM, **kwargs: Any) -> Any:
    loop, eng = engine
    extra = {k: kwargs.pop(k) for k in ("preview_chars",) if k in kwargs}
    llm = LLMConfig(base_url=fake.base_url, api_key=fake.api_key, model="fake-model")
    request = AgentRequest(**kwargs)
    coro = run_agent(eng, request, llm, **extra)
    return asyncio.run_coroutine_threadsafe(coro, loop).result(120)


# -- the server's log --------------------------------------------------------------------


def log_lines(server: ServerProcess, since: int) -> list[dict[str, Any]]:
    lines = []
    for raw in server.output(since).splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines


def logged(server: ServerProcess, since: int, execution_id: str) -> dict[str, Any]:
    """The log line of one execution (it is written before the answer; this waits for the
    file to show it, it does not measure anything)."""
    deadline = time.monotonic() + 30
    while True:
        for line in log_lines(server, since):
            if line.get("event") == "execution" and line.get("execution_id") == execution_id:
                return line
        if time.monotonic() > deadline:
            pytest.fail(f"no log line for {execution_id}:\n{server.output(since)[-5000:]}")
        time.sleep(0.05)


def assert_leaky_run_masked(result: dict[str, Any]) -> None:
    """The ExecutionResult of LEAKY: failed, the secret *** everywhere it was."""
    assert result["ok"] is False, result
    assert result["stdout"] == f"payload {INPUT} key ***\n", result
    assert "err ***" in result["stderr"], result
    error = result["error"]
    assert error["type"] == "runtime_error", result
    assert error["message"].endswith("bad key ***"), result
    assert "bad key ***" in (error["traceback"] or ""), result
    assert_no_leak(json.dumps(result))


# -- a. --log-inputs: the inputs are logged, the secrets never ---------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_log_inputs_logs_the_inputs_but_never_a_secret(
    server: ServerProcess, client: httpx.Client, language: str
) -> None:
    mark = server.output_size()
    ids = []
    for path, body in (
        ("/v1/execute", {"language": language}),
        (f"/v1/tools/execute-{language}", {}),
    ):
        body |= {"code": LEAKY[language], "inputs": {"payload": INPUT}, "secrets": {"key": SECRET}}
        response = client.post(path, json=body)
        assert response.status_code == 200, response.text
        assert_leaky_run_masked(response.json())
        ids.append(response.json()["execution_id"])
    for execution_id in ids:
        line = logged(server, mark, execution_id)
        assert line["inputs"] == {"payload": INPUT}  # --log-inputs: the inputs are there
        assert line["code"] == LEAKY[language]
        assert line["outcome"] == "runtime_error"
        record = client.get(f"/v1/executions/{execution_id}")
        assert record.status_code == 200
        assert_no_leak(record.text)
    assert INPUT in server.output(mark)
    assert_no_leak(server.output(mark))


LIBRARY_STEP = {
    PY: "def main(message, key):\n    print('signing with', key)\n"
    "    return len(message) + len(key)",
    JS: "function main(message, key) {\n  console.log('signing with ' + key);\n"
    "  return message.length + key.length;\n}",
}
# Test keys start with tk_: the live secret fails it, and the failure names it.
LIBRARY_INPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "key": {"type": "string", "pattern": "^tk_"},
    },
    "required": ["message", "key"],
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_log_inputs_library_run_and_an_input_error_that_shows_the_secret(
    server: ServerProcess, client: httpx.Client, language: str
) -> None:
    name = f"secret-step-{language}"
    saved = client.put(
        f"/v1/snippets/{name}",
        json={"language": language, "code": LIBRARY_STEP[language],
              "input_schema": LIBRARY_INPUT_SCHEMA},
    )  # fmt: skip
    assert saved.status_code in (200, 201), saved.text
    test_key = "tk_Zm4Hq8Rw2Ys6"
    mark = server.output_size()

    ok = client.post(
        f"/v1/snippets/{name}/run",
        json={"inputs": {"message": INPUT}, "secrets": {"key": test_key}},
    ).json()
    assert ok["ok"] is True and ok["result"] == len(INPUT) + len(test_key), ok
    assert ok["stdout"] == "signing with ***\n"

    # f. input_error: the jsonschema message quotes the value; the secret is *** in it.
    misfit = client.post(
        f"/v1/snippets/{name}/run",
        json={"inputs": {"message": INPUT}, "secrets": {"key": SECRET}},
    ).json()
    assert misfit["ok"] is False and misfit["error"]["type"] == "input_error", misfit
    assert "inputs.key: '***' does not match '^tk_'" in misfit["error"]["message"]
    assert_no_leak(json.dumps(misfit))

    for run, outcome in ((ok, "ok"), (misfit, "input_error")):
        line = logged(server, mark, run["execution_id"])
        assert line["inputs"] == {"message": INPUT} and line["snippet"] == name
        assert line["outcome"] == outcome
        record = client.get(f"/v1/executions/{run['execution_id']}").json()
        assert record["inputs"] == {"message": INPUT}  # never the secrets
        assert_no_leak(json.dumps(record), test_key)
        assert_no_leak(json.dumps(record))
    text = server.output(mark)
    assert_no_leak(text)
    assert_no_leak(text, test_key)


def test_refused_requests_never_echo_or_log_a_secret(
    server: ServerProcess, client: httpx.Client
) -> None:
    mark = server.output_size()
    refused = [
        # a name both as an input and as a secret ("execution refused" is logged)
        client.post("/v1/execute", json={"language": "python", "code": "def main(key): 1",
                                         "inputs": {"key": INPUT}, "secrets": {"key": SECRET}}),
        # a limit above the maximum, with secrets
        client.post("/v1/execute", json={"language": "javascript", "code": "return 1",
                                         "timeout_ms": 10**9, "secrets": {"key": SECRET}}),
        # an unknown field next to the secrets
        client.post("/v1/tools/execute-python", json={"code": "1", "nope": 1,
                                                      "secrets": {"key": SECRET}}),
        # a body that is not JSON, cut after the secret
        client.post("/v1/execute", content=f'{{"language": "python", "secrets": {{"key": '
                    f'"{SECRET}"', headers={"Content-Type": "application/json"}),
        # Agent Mode: a bad request with secrets, refused before the model is asked
        client.post("/v1/agent", json={"goal": GOAL, "language": "python", "max_attempts": 99,
                                       "secrets": {"key": SECRET}}),
        client.post("/v1/snippets/no-such-step/run", json={"secrets": {"key": SECRET}}),
    ]  # fmt: skip
    for response in refused:
        assert response.status_code in (404, 422), response.text
        assert response.json()["error"]["message"], response.text
        assert_no_leak(response.text)
    assert "both as an input and as a secret" in refused[0].json()["error"]["message"]
    deadline = time.monotonic() + 30
    while not any(line.get("message") == "execution refused" for line in log_lines(server, mark)):
        assert time.monotonic() < deadline, server.output(mark)
        time.sleep(0.05)
    assert_no_leak(server.output(mark))


# -- b. Agent Mode: the first attempt fails, the feedback never carries the secret --------


def model_saw(fake: FakeLLM) -> str:
    """Everything the model was sent, as the text of each message (not JSON-escaped)."""
    parts = []
    for request in fake.requests:
        for message in request["body"]["messages"]:
            parts.append(json.dumps(message, ensure_ascii=False))
            if isinstance(message.get("content"), str):
                parts.append(message["content"])
    return "\n".join(parts)


@pytest.mark.parametrize("failure", list(FIRST_ATTEMPTS))
@pytest.mark.parametrize("language", LANGUAGES)
def test_agent_feedback_after_a_failed_attempt_never_shows_the_secret(
    engine: tuple[asyncio.AbstractEventLoop, Engine], language: str, failure: str
) -> None:
    first = FIRST_ATTEMPTS[failure][language]
    with FakeLLM([tool_call(first, language), tool_call(SIGN[language], language)]) as fake:
        answer = agent(
            engine, fake, goal=GOAL, language=language, inputs={"body": BODY},
            secrets={"key": SECRET}, output_schema=SIG_SCHEMA, preview_chars=PREVIEW_CHARS,
        )  # fmt: skip

    assert answer.ok, answer.error
    assert answer.result == {"sig": SIG}
    assert [a.outcome.ok for a in answer.attempts] == [False, True]
    assert answer.attempts[1].outcome.stdout == "signing with ***\n"
    outcome = answer.attempts[0].outcome
    assert len(fake.requests) == 2
    feedback = fake.requests[1]["body"]["messages"][-1]
    assert feedback["role"] == "tool"
    text = feedback["content"]
    if failure == "raises":
        assert outcome.error.type.value == "runtime_error"
        assert outcome.stdout == "signing with ***\n" and "stderr ***" in outcome.stderr
        assert "rejected key ***" in text and "signing with ***" in text and "stderr ***" in text
        assert_no_leak(answer.model_dump_json())
    else:
        assert outcome.error.type.value == "schema_error"
        assert_no_leak(outcome.error.message)
        # The value returned is the snippet's answer: the caller gets it as it was...
        assert SECRET in json.dumps(outcome.result)
        assert "schema_error" in text and "***" in text
    # ...and the model never sees the secret, whole or in part.
    assert_no_leak(model_saw(fake))
    assert "`key`" in fake.prompt(0)


ESCAPED = "pa\\ss\"Q7v2Lr9X'kT3zP8n4"  # a backslash and both quotes: repr and JSON escape it


@pytest.mark.parametrize("language", LANGUAGES)
def test_agent_never_shows_the_model_an_escaped_secret(
    engine: tuple[asyncio.AbstractEventLoop, Engine], language: str
) -> None:
    first = FIRST_ATTEMPTS["schema"][language]
    good = {
        PY: "def main(body, key):\n    return {'sig': 'a' * 64}",
        JS: "function main(body, key) {\n  return { sig: 'a'.repeat(64) };\n}",
    }[language]
    with FakeLLM([tool_call(first, language), tool_call(good, language)]) as fake:
        answer = agent(
            engine, fake, goal=GOAL, language=language, inputs={"body": BODY},
            secrets={"key": ESCAPED}, output_schema=SIG_SCHEMA,
        )  # fmt: skip
    assert answer.ok, answer.error
    assert answer.attempts[0].outcome.result["sig"] == ESCAPED  # the snippet got it whole
    assert "schema_error" in fake.requests[1]["body"]["messages"][-1]["content"]
    assert_no_leak(model_saw(fake), ESCAPED)


# Writes up to the output limit so that the cut falls inside the secret, then fails.
CUT_OUTPUT = {
    PY: "import sys\n"
    "def main(body, key, fill):\n"
    "    sys.stdout.write('x' * fill + key)\n"
    "    sys.stderr.write('y' * fill + key)\n"
    "    raise ValueError('see the output')",
    JS: "function main(body, key, fill) {\n"
    "  process.stdout.write('x'.repeat(fill) + key);\n"
    "  process.stderr.write('y'.repeat(fill) + key);\n"
    "  throw new Error('see the output');\n"
    "}",
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_agent_never_shows_the_model_a_secret_cut_by_the_output_limit(
    engine: tuple[asyncio.AbstractEventLoop, Engine], language: str
) -> None:
    fill = engine[1].settings.output_limit_bytes - 11  # 11 characters of the secret fit
    good = {
        PY: "def main(body, key, fill):\n    return {'sig': 'a' * 64}",
        JS: "function main(body, key, fill) {\n  return { sig: 'a'.repeat(64) };\n}",
    }[language]
    script = [tool_call(CUT_OUTPUT[language], language), tool_call(good, language)]
    with FakeLLM(script) as fake:
        answer = agent(
            engine, fake, goal=GOAL, language=language, inputs={"body": BODY, "fill": fill},
            secrets={"key": SECRET}, output_schema=SIG_SCHEMA,
        )  # fmt: skip
    assert answer.ok, answer.error
    first = answer.attempts[0].outcome
    assert first.stdout_truncated and first.stderr_truncated
    text = fake.requests[1]["body"]["messages"][-1]["content"]
    assert "see the output" in text and "xxx***" in text and "yyy***" in text
    assert_no_leak(model_saw(fake))


@pytest.mark.parametrize("language", LANGUAGES)
def test_agent_never_shows_the_model_a_secret_that_an_input_or_the_goal_holds(
    engine: tuple[asyncio.AbstractEventLoop, Engine], language: str
) -> None:
    # The caller pasted the secret into a (non-secret) input and the goal too: the model
    # still sees only ***, the snippet the real values.
    code = {
        PY: "def main(config, key):\n    return {'same': config['token'] == key}",
        JS: "function main(config, key) {\n  return { same: config.token === key };\n}",
    }[language]
    with FakeLLM([tool_call(code, language)]) as fake:
        answer = agent(
            engine, fake, goal=f"Check that config.token is the key ({SECRET}).",
            language=language, inputs={"config": {"token": SECRET, "user": "ada"}},
            secrets={"key": SECRET},
        )  # fmt: skip
    assert answer.ok and answer.result == {"same": True}, answer
    assert "***" in fake.prompt(0) and '"user": "ada"' in fake.prompt(0)
    assert_no_leak(model_saw(fake))


# -- b + e. Agent Mode over HTTP (--log-inputs) with save_as -----------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_http_agent_with_secrets_retries_then_saves_the_step_without_an_example(
    server: ServerProcess, client: httpx.Client, llm: FakeLLM, language: str
) -> None:
    name = f"sign-body-{language}"
    first = FIRST_ATTEMPTS["raises"][language]
    script(llm, [tool_call(first, language), tool_call(SIGN[language], language)])
    mark = server.output_size()
    response = client.post(
        "/v1/agent",
        json={"goal": GOAL, "language": language, "inputs": {"body": BODY},
              "secrets": {"key": SECRET}, "output_schema": SIG_SCHEMA, "save_as": name},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["ok"] is True and answer["result"] == {"sig": SIG}, answer
    assert [a["outcome"]["ok"] for a in answer["attempts"]] == [False, True]
    assert answer["attempts"][0]["outcome"]["error"]["message"].endswith("rejected key ***")
    assert answer["saved"] == {"name": name, "version": 1}
    assert answer["error"] is None
    assert_no_leak(response.text)
    assert len(llm.requests) == 2
    assert "rejected key ***" in llm.requests[1]["body"]["messages"][-1]["content"]
    assert_no_leak(model_saw(llm))

    # e. Saved as documented: goal, schema, tag, and no example (it would need the secret).
    snippet = client.get(f"/v1/snippets/{name}")
    assert snippet.status_code == 200, snippet.text
    stored = snippet.json()
    assert stored["code"] == answer["code"] == SIGN[language]
    assert stored["description"] == GOAL and stored["output_schema"] == SIG_SCHEMA
    assert stored["tags"] == ["agent"] and stored["examples"] == []
    assert set(stored["input_schema"]["properties"]) == {"body", "key"}
    assert_no_leak(snippet.text)
    # The step runs once the secret is given again; history and log never keep it.
    run = client.post(
        f"/v1/snippets/{name}/run", json={"inputs": {"body": BODY}, "secrets": {"key": SECRET}}
    ).json()
    assert run["ok"] is True and run["result"] == {"sig": SIG}, run
    assert run["stdout"] == "signing with ***\n"
    assert logged(server, mark, run["execution_id"])["inputs"] == {"body": BODY}
    record = client.get(f"/v1/executions/{run['execution_id']}").json()
    assert record["inputs"] == {"body": BODY}
    assert_no_leak(json.dumps(record))
    assert_no_leak(server.output(mark))


# -- c. the CLI --------------------------------------------------------------------------

EXE = [sys.executable, "-m", "coderunner"]


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXE, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODERUNNER_")}
    env.pop("key", None)
    return {**env, **extra}


EXTENSION = {PY: ".py", JS: ".js"}


@pytest.mark.parametrize("way", ["value", "environment", "file"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_cli_run_binds_and_masks_a_secret(tmp_path: Path, language: str, way: str) -> None:
    snippet = tmp_path / f"digest{EXTENSION[language]}"
    snippet.write_text(DIGESTS[language])
    env = clean_env()
    if way == "value":
        flags = ["--secret", f"key={SECRET}"]
    elif way == "environment":
        flags = ["--secret", "key"]
        env["key"] = SECRET
    else:
        (tmp_path / "secrets.json").write_text(json.dumps({"key": SECRET}))
        flags = ["--secrets", str(tmp_path / "secrets.json")]
    out = cli("run", str(snippet), *flags, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert result["ok"] is True and result["result"] == DIGEST  # it saw the value
    assert result["stdout"] == "got ***\n"
    assert_no_leak(out.stdout + out.stderr)


@pytest.mark.parametrize("language", LANGUAGES)
def test_cli_secret_flags_win_over_the_file_and_mask_in_errors(
    tmp_path: Path, language: str
) -> None:
    other = "ghp_Wd5Jc1Nb7Mf3Vx9"
    (tmp_path / "secrets.json").write_text(json.dumps({"key": "from-the-file", "other": other}))
    code = {
        PY: "def main(n, key, other):\n    print(key, other)\n"
        "    raise RuntimeError(f'{n}: {key} / {other}')",
        JS: "function main(n, key, other) {\n  console.log(key + ' ' + other);\n"
        "  throw new Error(n + ': ' + key + ' / ' + other);\n}",
    }[language]
    out = cli(
        "run", "-l", language, "-c", code, "-i", "n=7", "--secrets",
        str(tmp_path / "secrets.json"), "--secret", f"key={SECRET}", env=clean_env(),
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert result["stdout"] == "*** ***\n"  # key from --secret, other from the file
    assert result["error"]["message"].endswith("7: *** / ***")
    assert "from-the-file" not in out.stdout
    assert_no_leak(out.stdout + out.stderr)
    assert_no_leak(out.stdout + out.stderr, other)


BAD_SECRETS = {
    "missing-file": (None, "cannot read"),
    "not-json": ('{"key": "' + SECRET + '", oops}', "is not JSON"),
    "an-array": (json.dumps([SECRET]), "must hold a JSON object of secrets"),
    "not-a-string": (json.dumps({"key": SECRET, "n": 5}), "the value of 'n' must be a string"),
}


@pytest.mark.parametrize("case", list(BAD_SECRETS))
def test_cli_a_bad_secrets_file_is_a_usage_error(tmp_path: Path, case: str) -> None:
    content, expected = BAD_SECRETS[case]
    path = tmp_path / "secrets.json"
    if content is not None:
        path.write_text(content)
    out = cli("run", "-l", "python", "-c", "def main(key):\n    return 1", "--secrets", str(path),
              env=clean_env())  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == ""
    assert "--secrets" in out.stderr and expected in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert_no_leak(out.stderr)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--secret", "key"], "no environment variable key"),
        (["--secret", "=" + SECRET], "expected NAME=VALUE or NAME"),
        (["-i", "key=1", "--secret", f"key={SECRET}"], "both as an input and as a secret"),
    ],
    ids=["no-such-variable", "no-name", "both-input-and-secret"],
)
def test_cli_bad_secret_flags_are_usage_errors(flags: list[str], expected: str) -> None:
    out = cli("run", "-l", "python", "-c", "def main(key):\n    return 1", *flags, env=clean_env())
    assert out.returncode == 2, out.stdout + out.stderr
    assert expected in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert_no_leak(out.stdout + out.stderr)


@pytest.mark.parametrize("language", LANGUAGES)
def test_cli_agent_with_secrets_then_snippets_run_and_history(
    tmp_path: Path, language: str
) -> None:
    (tmp_path / "secrets.json").write_text(json.dumps({"key": SECRET}))
    (tmp_path / "schema.json").write_text(json.dumps(SIG_SCHEMA))
    name = f"sign-cli-{language}"
    first = FIRST_ATTEMPTS["schema"][language]
    with FakeLLM([tool_call(first, language), tool_call(SIGN[language], language)]) as fake:
        env = clean_env(
            CODERUNNER_LLM_BASE_URL=fake.base_url, CODERUNNER_LLM_API_KEY=fake.api_key,
            CODERUNNER_LLM_MODEL="fake-model", CODERUNNER_DATA_DIR=str(tmp_path / "data"),
        )  # fmt: skip
        out = cli(
            "agent", GOAL, "-l", language, "-i", f"body={json.dumps(BODY)}", "--secrets",
            str(tmp_path / "secrets.json"), "--schema", str(tmp_path / "schema.json"),
            "--save-as", name, "--max-attempts", "2", env=env,
        )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    answer = json.loads(out.stdout)
    assert answer["ok"] is True and answer["result"] == {"sig": SIG}
    assert answer["saved"] == {"name": name, "version": 1}
    assert [a["outcome"]["ok"] for a in answer["attempts"]] == [False, True]
    assert answer["attempts"][1]["outcome"]["stdout"] == "signing with ***\n"
    assert_no_leak(out.stderr)
    assert len(fake.requests) == 2
    assert_no_leak(model_saw(fake))

    shown = cli("snippets", "show", name, env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["examples"] == []
    assert_no_leak(shown.stdout)

    run = cli("snippets", "run", name, "-i", f"body={json.dumps(BODY)}", "--secret", "key",
              env={**env, "key": SECRET})  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["result"] == {"sig": SIG} and result["stdout"] == "signing with ***\n"
    assert_no_leak(run.stdout + run.stderr)

    history = cli("history", "--snippet", name, env=env)
    assert history.returncode == 0, history.stderr
    [summary] = json.loads(history.stdout)["executions"]
    record = cli("history", summary["execution_id"], env=env)
    assert record.returncode == 0, record.stderr
    assert json.loads(record.stdout)["inputs"] == {"body": BODY}
    assert_no_leak(history.stdout + record.stdout)


# -- d. MCP: execute-python / execute-javascript with secrets ----------------------------


async def mcp_secret_calls(client: Client) -> None:
    for language in LANGUAGES:
        tool = f"execute-{language}"
        leaky = await client.call_tool(
            tool, {"code": LEAKY[language], "inputs": {"payload": INPUT},
                   "secrets": {"key": SECRET}},
        )  # fmt: skip
        assert leaky.is_error is True
        assert_leaky_run_masked(leaky.structured_content)
        text = leaky.content[0].text  # type: ignore[union-attr]
        assert json.loads(text) == leaky.structured_content
        assert_no_leak(text)

        bound = await client.call_tool(
            tool, {"code": DIGESTS[language], "secrets": {"key": SECRET}}
        )
        assert bound.is_error is False, bound
        assert bound.structured_content["result"] == DIGEST
        assert bound.structured_content["stdout"] == "got ***\n"
        assert_no_leak(bound.content[0].text)  # type: ignore[union-attr]

        for arguments in (
            {"code": DIGESTS[language], "inputs": {"key": INPUT}, "secrets": {"key": SECRET}},
            {"code": DIGESTS[language], "timeout_ms": 10**9, "secrets": {"key": SECRET}},
            {"code": DIGESTS[language], "secrets": {"key": SECRET, "n": 5}},
        ):
            refused = await client.call_tool(tool, arguments)
            assert refused.is_error is True
            message = refused.content[0].text  # type: ignore[union-attr]
            assert message.startswith("invalid arguments"), message
            assert_no_leak(message)


def test_mcp_stdio_binds_and_masks_secrets(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    env = {"CODERUNNER_DATA_DIR": str(tmp_path / "data")}
    params = StdioServerParameters(command=CODERUNNER, args=["mcp", *SMALL_POOLS], env=env)

    async def main() -> None:
        async with Client(params, mode="auto") as client:  # type: ignore[arg-type]
            await mcp_secret_calls(client)

    asyncio.run(main())
    captured = capfd.readouterr()  # the server's log (stderr) included
    assert_no_leak(captured.out + captured.err)


@asynccontextmanager
async def mcp_http_client(server: ServerProcess) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(timeout=120) as http:
        transport = streamable_http_client(f"{server.base_url}/mcp", http_client=http)
        async with Client(transport, mode="auto") as client:  # type: ignore[arg-type]
            yield client


def test_mcp_http_with_log_inputs_binds_masks_and_never_logs_secrets(
    server: ServerProcess,
) -> None:
    mark = server.output_size()

    async def main() -> None:
        async with mcp_http_client(server) as client:
            await mcp_secret_calls(client)

    asyncio.run(main())
    deadline = time.monotonic() + 30
    while True:
        mcp_lines = [
            line for line in log_lines(server, mark)
            if line.get("event") == "execution" and line.get("surface") == "mcp"
        ]  # fmt: skip
        if len(mcp_lines) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert {"payload": INPUT} in [line.get("inputs") for line in mcp_lines], mcp_lines
    assert_no_leak(server.output(mark))


# -- f. masking in error messages --------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_runtime_error_name_message_and_traceback_are_masked(
    engine: tuple[asyncio.AbstractEventLoop, Engine], language: str
) -> None:
    code = {
        PY: "def main(key):\n    raise type(key, (Exception,), {})('boom ' + key)",
        JS: "function main(key) {\n  const e = new Error('boom ' + key);\n  e.name = key;\n"
        "  throw e;\n}",
    }[language]
    result = execute(engine, ExecutionRequest(language=language, code=code,
                                              secrets={"key": SECRET}))  # fmt: skip
    assert result.error.type.value == "runtime_error"
    assert result.error.name == "***" and result.error.message == "boom ***"
    assert "boom ***" in result.error.traceback
    assert_no_leak(result.model_dump_json())


@pytest.mark.parametrize("language", LANGUAGES)
def test_schema_and_serialization_error_messages_are_masked(
    engine: tuple[asyncio.AbstractEventLoop, Engine], language: str
) -> None:
    code = {
        PY: "def main(key):\n    return {'total': key, 'count': len(key)}",
        JS: "function main(key) {\n  return { total: key, count: key.length };\n}",
    }[language]
    schema = {"type": "object", "properties": {"total": {"type": "number"}}}
    result = execute(engine, ExecutionRequest(language=language, code=code, output_schema=schema,
                                              secrets={"key": SECRET}))  # fmt: skip
    assert result.error.type.value == "schema_error"
    assert "result.total: '***' is not of type 'number'" in result.error.message
    assert_no_leak(result.error.model_dump_json())
    # The returned value is the answer, not masked (documented).
    assert result.result == {"total": SECRET, "count": len(SECRET)}

    code = {
        PY: "def main(key):\n    return {key: {1, 2}}",
        JS: "function main(key) {\n  return { [key]: 10n };\n}",
    }[language]
    result = execute(engine, ExecutionRequest(language=language, code=code,
                                              secrets={"key": SECRET}))  # fmt: skip
    assert result.error.type.value == "serialization_error"
    assert result.error.message.startswith("result.*** is ")
    assert_no_leak(result.model_dump_json())


INNER = "Q7v2Lr9XkT3z"
OUTER = "tok-" + INNER + "-Pn4Wd5Jc"


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_secret_that_contains_another_is_masked_whole(
    engine: tuple[asyncio.AbstractEventLoop, Engine], language: str
) -> None:
    code = {
        PY: "import sys\ndef main(inner, outer):\n    print(outer)\n    print(inner)\n"
        "    print(outer + inner, file=sys.stderr)\n"
        "    raise ValueError(outer + ' / ' + inner)",
        JS: "function main(inner, outer) {\n  console.log(outer);\n  console.log(inner);\n"
        "  console.error(outer + inner);\n  throw new Error(outer + ' / ' + inner);\n}",
    }[language]
    # The shorter secret first: the order given must not matter.
    secrets = {"inner": INNER, "outer": OUTER}
    result = execute(engine, ExecutionRequest(language=language, code=code, secrets=secrets))
    assert result.stdout == "***\n***\n"
    assert result.stderr.strip() == "******"
    assert result.error.message.endswith("*** / ***")
    text = result.model_dump_json()
    assert "tok-" not in text and "Pn4Wd5Jc" not in text
    assert_no_leak(text, OUTER)

    schema = {"type": "object", "properties": {"t": {"type": "integer"}}}
    code = {
        PY: "def main(inner, outer):\n    return {'t': outer}",
        JS: "function main(inner, outer) {\n  return { t: outer };\n}",
    }[language]
    result = execute(engine, ExecutionRequest(language=language, code=code, secrets=secrets,
                                              output_schema=schema))  # fmt: skip
    assert "result.t: '***' is not of type 'integer'" in result.error.message
    assert "tok-" not in result.error.message


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_schema_error_result_is_stored_without_the_secret(
    client: httpx.Client, language: str
) -> None:
    code = {
        PY: "def main(key):\n    return {'total': key}",
        JS: "function main(key) {\n  return { total: key };\n}",
    }[language]
    result = client.post(
        "/v1/execute",
        json={"language": language, "code": code, "secrets": {"key": SECRET},
              "output_schema": {"type": "object", "properties": {"total": {"type": "number"}}}},
    ).json()  # fmt: skip
    assert result["error"]["type"] == "schema_error" and result["result"] == {"total": SECRET}
    record = client.get(f"/v1/executions/{result['execution_id']}")
    assert record.status_code == 200
    assert_no_leak(record.text)


def test_a_secret_with_a_backslash_is_masked_in_a_schema_error_message(
    engine: tuple[asyncio.AbstractEventLoop, Engine],
) -> None:
    result = execute(
        engine,
        ExecutionRequest(language="python", code="def main(key):\n    return key",
                         output_schema={"type": "integer"}, secrets={"key": ESCAPED}),
    )  # fmt: skip
    assert result.error.type.value == "schema_error"
    assert_no_leak(result.error.message, ESCAPED)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_secret_cut_by_the_output_limit_is_masked(
    engine: tuple[asyncio.AbstractEventLoop, Engine], language: str
) -> None:
    fill = engine[1].settings.output_limit_bytes - 11
    result = execute(
        engine,
        ExecutionRequest(language=language, code=CUT_OUTPUT[language],
                         inputs={"body": BODY, "fill": fill}, secrets={"key": SECRET}),
    )  # fmt: skip
    assert result.stdout_truncated and result.stderr_truncated
    assert_no_leak(result.stdout[-100:] + result.stderr[-100:])


def test_two_overlapping_secrets_leave_no_piece_of_either(
    engine: tuple[asyncio.AbstractEventLoop, Engine],
) -> None:
    # Neither contains the other: masking one at a time would leave a piece of the second.
    secrets = {"first": "abcdef12", "second": "ef12ghij"}
    code = "def main(first, second):\n    print(first[:4] + second)\n    return 1"
    result = execute(engine, ExecutionRequest(language="python", code=code, secrets=secrets))
    assert result.ok, result.error
    assert result.stdout == "***\n", result.stdout
