"""`chorus serve`: an OpenAI-compatible HTTP server over one chorus `Model`.

The standard library's threading HTTP server: each request gets a thread, and requests that
arrive together reach the model together (the transformers backend decodes them in one
running batch, each row with its own adapter, joining and leaving between tokens; other
backends' coalescer batches calls that arrive at the same moment). Bound to localhost unless
told otherwise; an optional API key (CHORUS_API_KEY); bodies over MAX_BODY_BYTES refused;
every refusal is an OpenAI-style error body with a 4xx status, never a dropped connection.
"""

from __future__ import annotations

import hmac
import json
import queue
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chorus.runtime import Model
from chorus.server.protocol import RequestError, answer, chunk, model_names, parse_chat

MAX_BODY_BYTES = 4 << 20


class ChorusServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], model: Model, *,
                 api_key: str | None = None, aliases: tuple[str, ...] = (), log=None):
        super().__init__(address, _Handler)
        self.model, self.api_key, self.aliases = model, api_key, aliases
        self.log = log or (lambda line: None)


class _Handler(BaseHTTPRequestHandler):
    server: ChorusServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        self.server.log(f"{self.address_string()} {format % args}")

    def do_GET(self) -> None:  # noqa: N802 - the base class's naming
        if self.path == "/health":
            return self._json(200, {"status": "ok", "model": self.server.model.name})
        if not self._authorized():
            return None
        if self.path == "/v1/models":
            created = int(time.time())
            return self._json(200, {"object": "list", "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "chorus",
                 "parent": None if name == self.server.model.name else self.server.model.name}
                for name in model_names(self.server.model)]})
        return self._error(RequestError(f"No route GET {self.path}", status=404))

    def do_POST(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        if self.path != "/v1/chat/completions":
            return self._error(RequestError(f"No route POST {self.path}", status=404))
        try:
            call = parse_chat(self._body(), self.server.model, self.server.aliases)
            if call.stream:
                return self._stream(call)
            return self._json(200, answer(call, self.server.model))
        except RequestError as error:
            return self._error(error)
        except Exception as error:  # noqa: BLE001 - a bug must still get an answer
            self.server.log(f"internal error: {type(error).__name__}: {error}")
            return self._error(RequestError(f"Internal error: {type(error).__name__}",
                                            status=500, kind="server_error"))

    # -- parts ------------------------------------------------------------------------------

    def _authorized(self) -> bool:
        key = self.server.api_key
        given = self.headers.get("Authorization", "")
        if key is None or hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            return True
        self._error(RequestError("Missing or wrong API key (Authorization: Bearer ...)",
                                 status=401, kind="authentication_error"))
        return False

    def _body(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise RequestError("A Content-Length header is required", status=411) from None
        if not 0 <= length <= MAX_BODY_BYTES:
            raise RequestError(f"The body is over {MAX_BODY_BYTES >> 20} MB", status=413)
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise RequestError("The body is not valid JSON") from None

    def _stream(self, call) -> None:
        """Server-sent events: a chunk per piece of text, then the finish, then [DONE]."""
        pieces: queue.Queue = queue.Queue()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["response"] = answer(call, self.server.model, on_text=pieces.put)
            except RequestError as error:
                outcome["error"] = error
            except Exception as error:  # noqa: BLE001
                outcome["error"] = RequestError(f"Internal error: {type(error).__name__}",
                                                status=500, kind="server_error")
            finally:
                pieces.put(None)

        threading.Thread(target=work, daemon=True).start()
        first = pieces.get()
        if first is None and "error" in outcome:  # failed before any text: a plain error
            return self._error(outcome["error"])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        response_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self._event(chunk(response_id, call.model_name, {"role": "assistant", "content": ""}))
        piece = first
        while piece is not None:
            self._event(chunk(response_id, call.model_name, {"content": piece}))
            piece = pieces.get()
        if "error" in outcome:
            self._event(outcome["error"].body())
        else:
            choice = outcome["response"]["choices"][0]
            calls = choice["message"].get("tool_calls")
            if calls:
                self._event(chunk(response_id, call.model_name, {"tool_calls": [
                    {"index": index, **item} for index, item in enumerate(calls)]}))
            final = chunk(response_id, call.model_name, {}, choice["finish_reason"])
            final["usage"] = outcome["response"]["usage"]
            self._event(final)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, data: dict[str, Any]) -> None:
        self.wfile.write(f"data: {_dumps(data)}\n\n".encode())
        self.wfile.flush()

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = _dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, error: RequestError) -> None:
        self._json(error.status, error.body())


def _dumps(body: dict[str, Any]) -> str:
    # ASCII: a request may carry lone surrogates ("\\ud800" in its JSON), which have no
    # UTF-8 form but do have a JSON escape.
    return json.dumps(body)


def serve(model: Model, host: str = "127.0.0.1", port: int = 8000, *,
          api_key: str | None = None, aliases: tuple[str, ...] = (), log=None,
          ready=None) -> None:
    """Serve until interrupted. `ready(server)` is called once the socket listens."""
    server = ChorusServer((host, port), model, api_key=api_key, aliases=aliases,
                          log=log or (lambda line: print(line, file=sys.stderr)))
    if ready:
        ready(server)
    try:
        server.serve_forever()
    finally:
        server.server_close()
