"""A local chat-completions server for the judge's tests and benchmark (127.0.0.1, a free port).

It answers ``POST .../chat/completions`` deterministically from the request (:func:`default_score`), after
``delay_s``, and can be told to misbehave for the next requests (:meth:`ChatServer.inject`): ``"429"``
(with ``Retry-After``), ``"500"``, ``"timeout"`` (answers only after ``hang_s``), ``"noscore"``,
``"twoscores"``, ``"bold"`` (``**Score:** 3``), ``"range"`` (``Score: 7``). Every request body is kept
(``requests``). Use as a context manager; it stops its threads on exit.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWERS = {
    "noscore": "The subject looks similar but I will not give a number.",
    "twoscores": "Score: 1\nOn reflection, Score: 3",
    "bold": "Analysis: fine.\n**Score:** 3",
    "range": "Score: 7",
}


def default_score(body: dict) -> int:
    """The score the server gives a request: sha256 of its last message's JSON and its seed, first byte,
    mod 5 (so runs, which differ by seed, differ in score)."""
    last = json.dumps([body["messages"][-1], body.get("seed")], sort_keys=True).encode()
    return hashlib.sha256(last).digest()[0] % 5


class ChatServer:
    def __init__(self, delay_s: float = 0.0, hang_s: float = 2.0, retry_after: str = "0.05"):
        self.delay_s, self.hang_s, self.retry_after = delay_s, hang_s, retry_after
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        self.times: list[float] = []  # time.monotonic() of each request's arrival
        self.in_flight = self.max_in_flight = 0
        self._faults: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall between the headers and the body

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                status, headers, payload = server._answer(self.path, body)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in {**headers, "Content-Type": "application/json",
                                 "Content-Length": str(len(data))}.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def inject(self, *faults: str) -> None:
        """Misbehave, in this order, for the next requests."""
        with self._lock:
            self._faults.extend(faults)

    def _answer(self, path: str, body: dict) -> tuple[int, dict, dict]:
        with self._lock:
            self.requests.append(body)
            self.times.append(time.monotonic())
            fault = self._faults.pop(0) if self._faults else ""
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._respond(path, body, fault)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _respond(self, path: str, body: dict, fault: str) -> tuple[int, dict, dict]:
        if not path.endswith("/chat/completions"):
            return self._status(404, {}, {"error": {"message": f"no route {path}"}})
        if fault == "429":
            return self._status(429, {"Retry-After": self.retry_after}, {"error": {"message": "rate limited"}})
        if fault == "500":
            return self._status(500, {}, {"error": {"message": "internal error"}})
        self._stop.wait(self.hang_s if fault == "timeout" else self.delay_s)
        content = ANSWERS.get(fault) or f"The images were compared.\nScore: {default_score(body)}"
        usage = {"prompt_tokens": len(json.dumps(body)) // 100, "completion_tokens": 10}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return self._status(200, {}, {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": 0,
            "model": body.get("model", ""), "usage": usage,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}]})

    def _status(self, status: int, headers: dict, payload: dict) -> tuple[int, dict, dict]:
        with self._lock:
            self.statuses.append(status)
        return status, headers, payload

    def __enter__(self) -> ChatServer:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
