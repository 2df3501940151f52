"""A real HTTP server on a loopback port whose answers a test scripts: for the endpoint's
retries, concurrency and malformed-response paths, which a well-behaved server never shows."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (path, request body, request headers) -> (status, headers, body: dict | str)
Script = Callable[[str, dict[str, Any], dict[str, str]], tuple[int, dict[str, str], Any]]


class ScriptedServer:
    def __init__(self, script: Script, delay_s: float = 0.0) -> None:
        self.script, self.delay_s = script, delay_s
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _answer(self, body: dict[str, Any]) -> None:
                with outer._lock:
                    outer.requests.append((self.path, body, dict(self.headers)))
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    time.sleep(outer.delay_s)
                    status, headers, out = outer.script(self.path, body, dict(self.headers))
                finally:
                    with outer._lock:
                        outer.in_flight -= 1
                data = (out if isinstance(out, str) else json.dumps(out)).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._answer({})

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                self._answer(json.loads(self.rfile.read(n) or b"{}"))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def posts(self) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
        return [r for r in self.requests if not r[0].endswith("/models")]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(text: str = "A", top: dict[str, float] | None = None, prompt_tokens: int = 10,
               completion_tokens: int = 1) -> dict[str, Any]:
    """An OpenAI completions body, with the first token's top log-probs when given."""
    choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": "length"}
    if top is not None:
        choice["logprobs"] = {"tokens": [text], "token_logprobs": [max(top.values())],
                              "top_logprobs": [top], "text_offset": [0]}
    return {"object": "text_completion", "model": "m", "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def models(name: str = "m") -> dict[str, Any]:
    return {"object": "list", "data": [{"id": name, "object": "model"}]}
