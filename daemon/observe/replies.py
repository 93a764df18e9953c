"""How the HTTP face answers one request that was read whole: JSON errors, 405s, HEAD.

:class:`Replies` is ``http.server``'s request parsing driven on bytes, with no socket: the
connection front (``streamlearn.observe.connections``) reads the request, a worker thread
answers it into a buffer. Errors are JSON, never the stdlib's HTML page, and a method a
path does not answer is a 405 with an ``Allow`` header. The routes are a subclass's.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from streamlearn.observe.json_bodies import BadRequest

__all__ = ["Replies"]

log = logging.getLogger(__name__)


class Replies(BaseHTTPRequestHandler):
    """Answers one complete request into ``response``; ``close_connection`` says whether the
    connection may carry another.

    Subclasses route ``do_GET``, ``do_POST`` and ``other_method`` (any other method; HEAD
    is GET without the body).
    """

    protocol_version = "HTTP/1.1"  # keep-alive for Prometheus and predict clients
    server_version = "streamlearn"
    sys_version = ""
    #: The largest body ``_read_body`` accepts (413 above).
    max_body_bytes = 64 * 1024
    #: True while answering a HEAD request: headers go out, the body does not.
    _head_only = False
    #: The request's path; stays "?" when the request line could not be parsed.
    path = "?"

    def __init__(self, request: bytes, client_address: tuple[str, int]) -> None:
        # Not BaseRequestHandler's __init__: there is no socket, the request is read whole.
        self.client_address = client_address
        self.rfile = io.BytesIO(request)
        self.response = io.BytesIO()
        self.wfile = self.response
        self.close_connection = True
        self.handle_one_request()

    def do_GET(self) -> None:
        raise NotImplementedError("a subclass routes GET")

    def do_POST(self) -> None:
        raise NotImplementedError("a subclass routes POST")

    def other_method(self) -> None:
        """PUT, DELETE, OPTIONS, TRACE, PATCH or any other method."""
        raise NotImplementedError("a subclass answers other methods")

    def do_HEAD(self) -> None:
        self._head_only = True
        self.do_GET()

    def _read_body(self) -> bytes:
        """The request's body, or ``BadRequest`` (411, 413, 400) saying what is wrong."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise BadRequest(
                "send a Content-Length, not a chunked body", HTTPStatus.LENGTH_REQUIRED
            )
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            raise BadRequest("Content-Length is required", HTTPStatus.LENGTH_REQUIRED)
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            raise BadRequest("bad Content-Length") from None
        if length < 0:
            self.close_connection = True
            raise BadRequest("bad Content-Length")
        if length > self.max_body_bytes:
            # The connection front did not pass it on (it dropped it, or left it unread).
            self.close_connection = True
            raise BadRequest(
                f"body of {length} bytes is over the limit of {self.max_body_bytes}",
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise BadRequest("body ended before Content-Length bytes")
        return body

    def _method_not_allowed(self, allow: str) -> None:
        path = urlsplit(self.path).path
        document = {"error": f"{self.command} is not allowed on {path}; use {allow}"}
        body = json.dumps(document).encode() + b"\n"
        headers = {"Content-Type": "application/json", "Allow": allow}
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, body, headers)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib answers with an HTML page; the clients of this face read JSON.
        self.close_connection = True
        status = HTTPStatus(code)
        self._json(status, {"error": message or status.phrase})

    def handle_expect_100(self) -> bool:
        return True  # the connection front sent "100 Continue" before it read the body

    def _text(self, status: HTTPStatus, text: str) -> None:
        self._send(status, text.encode(), {"Content-Type": "text/plain; charset=utf-8"})

    def _json(self, status: HTTPStatus, document: object, *, cache: bool = True) -> None:
        body = json.dumps(document, default=str, allow_nan=False).encode() + b"\n"
        headers = {"Content-Type": "application/json"}
        if not cache:
            headers["Cache-Control"] = "no-store"
        self._send(status, body, headers)

    def _send(self, status: HTTPStatus, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not self._head_only:
            self.wfile.write(body)

    def handle_one_request(self) -> None:
        self._head_only = False
        try:
            self._dispatch()
        except Exception:
            # An endpoint bug (a model_info() that raises, say) is a 500, never a dead thread.
            log.exception("error answering %s", self.path)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def _dispatch(self) -> None:
        # BaseHTTPRequestHandler.handle_one_request, but an unknown method is a 405 (not a
        # 501 HTML page) and the request is already in rfile.
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:
            return
        if len(self.raw_requestline) > 65536:
            self.requestline, self.request_version, self.command = "", "", ""
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        if not self.parse_request():
            return  # parse_request answered (400, 431, 505...)
        if self.command == "GET":
            self.do_GET()
        elif self.command == "HEAD":
            self.do_HEAD()
        elif self.command == "POST":
            self.do_POST()
        else:
            self.other_method()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)
