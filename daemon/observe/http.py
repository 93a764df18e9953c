"""The daemon's HTTP face on one port: /metrics, /healthz, /readyz, POST /predict, GET /model,
and the status page at / (polling /status.json).

Connections are read on an event loop (``streamlearn.observe.connections``: a slow client
holds no thread, and each request has a deadline); a few worker threads answer complete
requests with ``http.server``'s request parsing. Nothing here touches the learner: what it
needs arrives as callables from the run loop, safe to call from any thread.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import json
import logging
import math
import socket
from collections.abc import Callable, Collection, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from streamlearn.observe.connections import ConnectionFront, Limits
from streamlearn.observe.json_bodies import (
    BadRequest,
    Example,
    Query,
    finite_or_null,
    parse_examples,
    parse_queries,
)
from streamlearn.observe.serving import Learned, ModelUnavailable, Prediction
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
DEFAULT_METRICS_PORT = 9966
#: Default bind address: loopback, so nothing is exposed unless asked for.
DEFAULT_METRICS_HOST = "127.0.0.1"
#: Largest ``POST /predict`` body accepted; larger ones get 413.
MAX_BODY_BYTES = 64 * 1024
#: Seconds a client has to send a whole request (a slow one is answered 408).
REQUEST_DEADLINE = 10.0

#: ``features -> Prediction`` (a ``(prediction, model_version)`` pair is taken too).
Predict = Callable[[dict[str, float]], Prediction | tuple[float, int]]
#: ``(queries, batch) -> one Prediction each``; queries with an id may wait for a label.
PredictMany = Callable[[list[Query], bool], list[Prediction]]
#: ``examples -> Learned``: ``POST /learn``.
Learn = Callable[[list[Example]], Learned]
#: ``() -> (file name, bytes)`` of the newest checkpoint: ``GET /model/download``.
Download = Callable[[], tuple[str, bytes]]

#: Paths and the methods they answer; any other method on them is a 405.
_GET_PATHS = ("/metrics", "/healthz", "/readyz", "/model", "/", "/status.json", "/model/download")
_POST_PATHS = ("/predict", "/learn")
#: Why a write endpoint answers 403 when it was not turned on.
_OFF = "{endpoint} is off: start the daemon with {flag} (it has no authentication)"


class MetricsServerError(RuntimeError):
    """The HTTP face cannot start (port in use, bad address)."""


class _Handler(BaseHTTPRequestHandler):
    """Answers one complete request, read by the connection front, into ``wfile``."""

    protocol_version = "HTTP/1.1"  # keep-alive for Prometheus and predict clients
    server_version = "streamlearn"
    sys_version = ""
    #: True while answering a HEAD request: headers go out, the body does not.
    _head_only = False
    #: The request's path; stays "?" when the request line could not be parsed.
    path = "?"

    def __init__(self, app: MetricsServer, request: bytes, client_address: tuple[str, int]):
        # Not BaseRequestHandler's __init__: there is no socket, the request is read whole.
        self.app = app
        self.client_address = client_address
        self.rfile = io.BytesIO(request)
        self.response = io.BytesIO()
        self.wfile = self.response
        self.close_connection = True
        self.handle_one_request()

    # -- routing ------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        app = self.app
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
        elif path == "/model/download":
            self._download()
        elif path in _POST_PATHS:
            self._method_not_allowed("POST")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such path {path}; try /metrics"})

    def do_HEAD(self) -> None:
        self._head_only = True
        self.do_GET()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/predict":
            self._predict()
        elif path == "/learn":
            self._learn()
        elif path in _GET_PATHS:
            self._method_not_allowed("GET, HEAD")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such path {path}"})

    def _other_method(self) -> None:
        """PUT, DELETE, OPTIONS, TRACE, PATCH or any other method: 405 on a known path."""
        path = urlsplit(self.path).path
        if path in _POST_PATHS:
            self._method_not_allowed("POST")
        elif path in _GET_PATHS:
            self._method_not_allowed("GET, HEAD")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such path {path}"})

    # -- endpoints ----------------------------------------------------------------------

    def _metrics(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        body = encoder(self.app.registry)
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
            ready = bool(self.app.ready())
        except Exception:
            log.warning("ready() failed", exc_info=True)
            ready = False
        if ready:
            self._text(HTTPStatus.OK, "ready\n")
            return
        reason = None
        if self.app.not_ready is not None:
            try:
                reason = self.app.not_ready()
            except Exception:
                log.warning("not_ready() failed", exc_info=True)
        why = f": {reason}" if reason else ""
        self._text(HTTPStatus.SERVICE_UNAVAILABLE, f"not ready{why}\n")

    def _predict(self) -> None:
        app = self.app
        try:
            queries, batch = parse_queries(self._read_body(), app.expected_features())
            answers = app.predict_many(queries, batch)
        except BadRequest as exc:  # the body, or a feature refused under --strict-features
            too_large = exc.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
            app.count("too_large" if too_large else "bad_request")
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
        documents: list[dict[str, object]] = []
        for prediction, model_version, ignored in answers:
            if not math.isfinite(prediction):
                # A diverged model must not hand NaN/inf to a client that will act on it.
                app.count("unavailable")
                error = "the model produced a non-finite prediction"
                document = {"error": error, "model_version": model_version}
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, document)
                return
            answer: dict[str, object] = {
                "prediction": float(prediction),
                "model_version": int(model_version),
            }
            if ignored:
                answer["ignored_features"] = list(ignored)
            documents.append(answer)
        app.count("ok")
        self._json(HTTPStatus.OK, documents if batch else documents[0])

    def _learn(self) -> None:
        app = self.app
        if app.learn is None:
            self._json(
                HTTPStatus.FORBIDDEN,
                {"error": _OFF.format(endpoint="POST /learn", flag="--http-learn")},
            )
            return
        try:
            examples = parse_examples(self._read_body(), app.target, app.expected_features())
            learned = app.learn(examples)
        except BadRequest as exc:
            self._json(exc.status, {"error": str(exc)})
            return
        except ModelUnavailable as exc:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"cannot learn now: {exc}"})
            return
        self._json(HTTPStatus.OK, learned.document())

    def _download(self) -> None:
        app = self.app
        if app.download is None:
            error = _OFF.format(endpoint="GET /model/download", flag="--http-download")
            self._json(HTTPStatus.FORBIDDEN, {"error": error})
            return
        try:
            name, data = app.download()
        except BadRequest as exc:
            self._json(exc.status, {"error": str(exc)})
            return
        except ModelUnavailable as exc:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
            return
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{name}"',
        }
        self._send(HTTPStatus.OK, data, headers)

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
            # The connection front did not pass it on (it dropped it, or left it unread).
            self.close_connection = True
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
            self._other_method()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class MetricsServer:
    """Serves the registry and the model over HTTP from background threads.

    Parameters
    ----------
    host, port
        Where to listen; ``port=0`` picks a free port (read it back from ``.port``).
    registry
        Exposed at ``/metrics`` (Prometheus text format, or OpenMetrics when asked).
    ready
        ``/readyz`` answers 200 when it returns true, else 503 (also when it raises).
    not_ready
        Why the daemon is not ready (a full disk, a broker out of reach): the 503's body.
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
    predict_many
        ``POST /predict`` with ids or a JSON array (``ModelService.predict_many``); without
        it, each record goes to ``predict`` and ids are not kept.
    learn, download, target
        ``POST /learn`` (its records' label is under ``target``) and ``GET /model/download``;
        each answers 403 while None (off).
    max_connections, workers, request_deadline
        Open connections at once (more are answered 503), threads answering complete
        requests, and seconds a client has to send a whole request (else 408).

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
        not_ready: Callable[[], str | None] | None = None,
        max_connections: int = 1024,
        workers: int = 16,
        request_deadline: float = REQUEST_DEADLINE,
        predict_many: PredictMany | None = None,
        learn: Learn | None = None,
        download: Download | None = None,
        target: str = "y",
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        self.limits = Limits(
            request_deadline=request_deadline,
            max_body_bytes=MAX_BODY_BYTES,
            max_connections=max_connections,
            workers=workers,
        )
        self.host = host
        self.registry = registry
        self.ready = ready
        self.not_ready = not_ready
        self.model_info = model_info
        self.expected_features = expected_features
        self.telemetry = telemetry
        self._predict_many = predict_many
        self.learn = learn
        self.download = download
        self.target = target
        self._predict = predict
        self._requested_port = port
        #: Builds ``/status.json`` (the status page's data) from ``model_info`` and telemetry.
        self.status = StatusBoard(lambda: self.model_info(), telemetry, lambda: self.ready())
        self._front: ConnectionFront | None = None
        self._bound_port: int | None = None

    def predict(self, features: dict[str, float]) -> Prediction | tuple[float, int]:
        """Call the run loop's thread-safe predict (503 while there is none)."""
        if self._predict is None:
            raise ModelUnavailable("this daemon does not serve predictions")
        return self._predict(features)

    def predict_many(self, queries: list[Query], batch: bool) -> list[Prediction]:
        """One prediction per query: the run loop's, or ``predict`` on each (ids not kept)."""
        if self._predict_many is not None:
            return self._predict_many(queries, batch)
        return [Prediction(*self.predict(query.features)) for query in queries]

    def count(self, outcome: str) -> None:
        """Count one ``/predict`` outcome when telemetry is attached."""
        if self.telemetry is not None:
            self.telemetry.http_predict(outcome)

    def answer(self, request: bytes, client_address: tuple[str, int]) -> tuple[bytes, bool]:
        """The response to one complete request, and whether to close the connection after it."""
        handler = _Handler(self, request, client_address)
        return handler.response.getvalue(), handler.close_connection

    @property
    def port(self) -> int:
        """The bound port (the real one when started with port 0)."""
        return self._bound_port if self._bound_port is not None else self._requested_port

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:9966``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in daemon threads; ``MetricsServerError`` if the port is taken."""
        if self._front is not None:
            raise MetricsServerError("the metrics server is already running")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            sock = socket.create_server(
                (self.host, self._requested_port), family=family, backlog=128
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise MetricsServerError(
                    f"{self.host}:{self._requested_port} is already in use: stop the other "
                    "process or choose another --metrics-port"
                ) from exc
            raise MetricsServerError(
                f"cannot listen on {self.host}:{self._requested_port}: {exc.strerror or exc}"
            ) from exc
        self._bound_port = int(sock.getsockname()[1])
        self._front = ConnectionFront(
            sock, self.answer, self.limits, f"streamlearn-http-{self.port}"
        )
        self._front.start()
        log.info("serving / /metrics /healthz /readyz /predict /model on %s", self.url)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close the socket and every connection; safe to call twice."""
        front = self._front
        if front is None:
            return
        front.stop(timeout)
        self._front = None
        self._bound_port = None

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
