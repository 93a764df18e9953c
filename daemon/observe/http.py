"""The daemon's HTTP face on one port: /metrics, /healthz, /readyz, POST /predict, GET /model,
and the status page at / (polling /status.json).

It runs ``http.server.ThreadingHTTPServer`` in a daemon thread: no dependency, a thread
per connection (bounded), and nothing here touches the learner. Everything it needs
arrives as callables from the run loop, and ``predict`` must be safe to call from any
thread (it predicts on a published, read-only snapshot of the model).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import logging
import math
import socket
import socketserver
import threading
from collections.abc import Callable, Collection, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from streamlearn.observe.json_bodies import BadRequest, finite_or_null, parse_features
from streamlearn.observe.serving import ModelUnavailable, Prediction
from streamlearn.observe.status import StatusBoard, status_page
from streamlearn.observe.telemetry import Telemetry

__all__ = [
    "DEFAULT_METRICS_HOST",
    "DEFAULT_METRICS_PORT",
    "MAX_BODY_BYTES",
    "MetricsServer",
    "MetricsServerError",
    "ModelUnavailable",
]

log = logging.getLogger(__name__)

#: Default port of the HTTP face (``--metrics-port``).
DEFAULT_METRICS_PORT = 9108
#: Default bind address: loopback, so nothing is exposed unless asked for.
DEFAULT_METRICS_HOST = "127.0.0.1"
#: Largest ``POST /predict`` body accepted; larger ones get 413 without being read.
MAX_BODY_BYTES = 64 * 1024

#: ``features -> Prediction`` (a ``(prediction, model_version)`` pair is taken too).
Predict = Callable[[dict[str, float]], Prediction | tuple[float, int]]
# What socketserver hands a TCP server per connection (a UDP server's pair never comes here).
_Request = socket.socket | tuple[bytes, socket.socket]

# Oversized bodies up to this size are read and dropped before the 413 (see _read_body).
_DRAIN_LIMIT = 1024 * 1024


class MetricsServerError(RuntimeError):
    """The HTTP face cannot start (port in use, bad address)."""


class _Server(ThreadingHTTPServer):
    """A threading server with at most ``max_connections`` handler threads at once."""

    daemon_threads = True  # a hung client must not keep the process alive at exit
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], app: MetricsServer, max_connections: int):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        # Blocking in process_request stops accept() while full: back-pressure goes
        # to the kernel's listen queue instead of an unbounded number of threads.
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can hang for seconds
        # in a container without DNS; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: _Request, client_address: tuple[object, ...]) -> None:
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: _Request, client_address: tuple[object, ...]) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive for Prometheus and predict clients
    # Seconds a client may idle (keep-alive) or trickle before its socket is closed: an
    # idle connection holds one of the server's slots, so keep this short.
    timeout = 5.0
    # Headers and body go out in two writes: with Nagle on, a keep-alive client's
    # delayed ACK would stall every response by ~40 ms.
    disable_nagle_algorithm = True
    server_version = "streamlearn"
    sys_version = ""
    #: True while answering a HEAD request: headers go out, the body does not.
    _head_only = False
    #: The request's path; stays "?" when the request line could not be parsed.
    path = "?"

    # -- routing ------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        app = self.server.app
        if path == "/metrics":
            self._metrics()
        elif path == "/healthz":
            self._text(HTTPStatus.OK, "ok\n")
        elif path == "/readyz":
            self._readyz()
        elif path == "/model":
            self._json(HTTPStatus.OK, finite_or_null(app.model_info()))
        elif path == "/":
            self._page()
        elif path == "/status.json":
            self._json(HTTPStatus.OK, finite_or_null(app.status.document()), cache=False)
        elif path == "/predict":
            self._method_not_allowed("POST")
        else:
            self._text(HTTPStatus.NOT_FOUND, f"no such path {path}; try /metrics\n")

    def do_HEAD(self) -> None:
        self._head_only = True
        self.do_GET()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/predict":
            self._predict()
        elif path in ("/metrics", "/healthz", "/readyz", "/model", "/", "/status.json"):
            self._method_not_allowed("GET, HEAD")
        else:
            self._text(HTTPStatus.NOT_FOUND, f"no such path {path}\n")

    # -- endpoints ----------------------------------------------------------------------

    def _metrics(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        body = encoder(self.server.app.registry)
        headers = {"Content-Type": content_type}
        if gzip_accepted(self.headers.get("Accept-Encoding", "")):
            body = gzip.compress(body, compresslevel=1)  # cheap: the loop shares the CPU
            headers["Content-Encoding"] = "gzip"
        self._send(HTTPStatus.OK, body, headers)

    def _page(self) -> None:
        headers = {
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-cache",
            # Everything is inline: the page may fetch its own JSON and load nothing else.
            "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        }
        self._send(HTTPStatus.OK, status_page(), headers)

    def _readyz(self) -> None:
        try:
            ready = bool(self.server.app.ready())
        except Exception:
            log.warning("ready() failed", exc_info=True)
            ready = False
        if ready:
            self._text(HTTPStatus.OK, "ready\n")
        else:
            self._text(HTTPStatus.SERVICE_UNAVAILABLE, "not ready\n")

    def _predict(self) -> None:
        app = self.server.app
        try:
            features = parse_features(self._read_body(), app.expected_features())
        except BadRequest as exc:
            too_large = exc.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
            app.count("too_large" if too_large else "bad_request")
            self._json(exc.status, {"error": str(exc)})
            return
        try:
            prediction, model_version, ignored = Prediction(*app.predict(features))
            prediction = float(prediction)
        except BadRequest as exc:  # a feature the model has not learned, under --strict-features
            app.count("bad_request")
            self._json(exc.status, {"error": str(exc)})
            return
        except ModelUnavailable as exc:
            app.count("unavailable")
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"no model to serve: {exc}"})
            return
        except Exception as exc:
            log.exception("predict failed")
            app.count("error")
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"predict failed: {exc!r}"})
            return
        if not math.isfinite(prediction):
            # A diverged model must not hand NaN/inf to a client that will act on it.
            app.count("unavailable")
            self._json(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {
                    "error": "the model produced a non-finite prediction",
                    "model_version": model_version,
                },
            )
            return
        app.count("ok")
        answer: dict[str, object] = {"prediction": prediction, "model_version": int(model_version)}
        if ignored:
            answer["ignored_features"] = list(ignored)
        self._json(HTTPStatus.OK, answer)

    # -- plumbing -------------------------------------------------------------------------

    def _read_body(self) -> bytes:
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
        if length > MAX_BODY_BYTES:
            # Close the connection so the rest is never parsed as a request. Swallow a
            # moderately large body first: closing on unread data sends a TCP reset
            # that can destroy the 413 before the client reads it.
            self.close_connection = True
            if length <= _DRAIN_LIMIT:
                with contextlib.suppress(OSError):
                    self.rfile.read(length)
            raise BadRequest(
                f"body of {length} bytes is over the limit of {MAX_BODY_BYTES}",
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise BadRequest("body ended before Content-Length bytes")
        return body

    def _method_not_allowed(self, allow: str) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"method not allowed\n",
            {"Content-Type": "text/plain; charset=utf-8", "Allow": allow},
        )

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
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away; nothing to answer
        except Exception:
            # An endpoint bug (a model_info() that raises, say) is a 500, never a dead thread.
            log.exception("error answering %s", self.path)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class MetricsServer:
    """Serves the registry and the model over HTTP from a background thread.

    Parameters
    ----------
    host, port
        Where to listen; ``port=0`` picks a free port (read it back from ``.port``).
    registry
        Exposed at ``/metrics`` (Prometheus text format, or OpenMetrics when asked).
    ready
        ``/readyz`` answers 200 when it returns true, else 503 (also when it raises).
    predict
        Thread-safe ``features -> Prediction`` (``streamlearn.observe.serving``); may raise
        :class:`ModelUnavailable` (503) or ``BadRequest`` (400). A non-finite prediction
        is answered 503.
    model_info
        ``/model`` answers its dict as JSON.
    expected_features
        The feature names ``/predict`` requires; empty means any.
    telemetry
        When given, ``POST /predict`` outcomes are counted in
        ``streamlearn_http_predict_requests_total{outcome}``.
    max_connections
        Connections served at once; more wait in the listen queue.

    Examples
    --------
    >>> import json, urllib.request
    >>> server = MetricsServer(
    ...     "127.0.0.1", 0, CollectorRegistry(),
    ...     ready=lambda: True,
    ...     predict=lambda x: (2.0 * x["a"], 7),
    ...     model_info=lambda: {"spec": "sgd"},
    ...     expected_features=lambda: ["a"],
    ... )
    >>> server.start()
    >>> request = urllib.request.Request(
    ...     f"http://127.0.0.1:{server.port}/predict", data=b'{"a": 1.5}', method="POST")
    >>> json.load(urllib.request.urlopen(request))
    {'prediction': 3.0, 'model_version': 7}
    >>> urllib.request.urlopen(f"http://127.0.0.1:{server.port}/readyz").status
    200
    >>> server.stop()
    """

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        ready: Callable[[], bool] = lambda: True,
        predict: Predict | None = None,
        model_info: Callable[[], Mapping[str, object]] = dict,
        expected_features: Callable[[], Collection[str]] = tuple,
        *,
        telemetry: Telemetry | None = None,
        max_connections: int = 64,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self.host = host
        self.registry = registry
        self.ready = ready
        self.model_info = model_info
        self.expected_features = expected_features
        self.telemetry = telemetry
        self._predict = predict
        self._requested_port = port
        self._max_connections = max_connections
        #: Builds ``/status.json`` (the status page's data) from ``model_info`` and telemetry.
        self.status = StatusBoard(lambda: self.model_info(), telemetry, lambda: self.ready())
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def predict(self, features: dict[str, float]) -> Prediction | tuple[float, int]:
        """Call the run loop's thread-safe predict (503 while there is none)."""
        if self._predict is None:
            raise ModelUnavailable("this daemon does not serve predictions")
        return self._predict(features)

    def count(self, outcome: str) -> None:
        """Count one ``/predict`` outcome when telemetry is attached."""
        if self.telemetry is not None:
            self.telemetry.http_predict(outcome)

    @property
    def port(self) -> int:
        """The bound port (the real one when started with port 0)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:9108``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread; ``MetricsServerError`` if the port is taken."""
        if self._server is not None:
            raise MetricsServerError("the metrics server is already running")
        try:
            server = _Server((self.host, self._requested_port), self, self._max_connections)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise MetricsServerError(
                    f"{self.host}:{self._requested_port} is already in use: stop the other "
                    "process or choose another --metrics-port"
                ) from exc
            raise MetricsServerError(
                f"cannot listen on {self.host}:{self._requested_port}: {exc.strerror or exc}"
            ) from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how fast stop() returns
            name=f"streamlearn-http-{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.info("serving / /metrics /healthz /readyz /predict /model on %s", self.url)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close the socket and join the thread; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
