"""A real OpenAI-compatible Chat Completions server on loopback, answering from a script.

Each POST to ``/v1/chat/completions`` takes the next reply of the script and records what
it was sent (path, headers with lower-case names, JSON body), so tests can read the prompts
the agent wrote.

    with FakeLLM([tool_call("def main(x):\\n    return x")]) as llm:
        ... llm.base_url ... llm.requests[0]["body"]["messages"] ...
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
_ids = itertools.count(1)


@dataclass
class Reply:
    """One scripted HTTP answer: a status, a body (JSON value or raw bytes), a delay."""

    body: Any
    status: int = 200
    delay_s: float = 0.0


def completion(message: dict[str, Any], finish_reason: str = "stop") -> dict[str, Any]:
    """A chat completion object holding one assistant message."""
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": USAGE,
    }


def tool_call(code: str, language: str = "python") -> Reply:
    """The model calls submit_code with the snippet."""
    call = {
        "id": f"call_{next(_ids)}",
        "type": "function",
        "function": {
            "name": "submit_code",
            "arguments": json.dumps({"language": language, "code": code}),
        },
    }
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    return Reply(completion(message, "tool_calls"))


def fenced(code: str, language: str = "python") -> Reply:
    """The model answers prose with the snippet in a fenced code block (no tool call)."""
    content = f"Here is the snippet:\n\n```{language}\n{code}\n```\n\nIt returns the result."
    return Reply(completion({"role": "assistant", "content": content}))


def text(content: str) -> Reply:
    """The model answers prose only."""
    return Reply(completion({"role": "assistant", "content": content}))


class FakeLLM:
    """The server; a context manager that starts it on a free port and stops it."""

    def __init__(self, script: list[Reply], api_key: str = "test-key") -> None:
        self.script = list(script)
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake._lock:
                    fake.requests.append({"path": self.path, "headers": headers, "body": body})
                    reply = fake.script.pop(0) if fake.script else None
                if self.path != "/v1/chat/completions":
                    reply = Reply({"error": {"message": f"no route {self.path}"}}, 404)
                elif reply is None:
                    reply = Reply({"error": {"message": "fake LLM: script exhausted"}}, 500)
                time.sleep(reply.delay_s)
                data = (
                    reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                )
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (a time-budget test)
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def prompt(self, index: int) -> str:
        """Everything request `index` sent the model, as one text (contents and tool calls)."""
        parts = []
        for message in self.requests[index]["body"]["messages"]:
            parts.append(message.get("content") or "")
            for call in message.get("tool_calls") or []:
                parts.append(call["function"]["arguments"])
        return "\n".join(parts)
