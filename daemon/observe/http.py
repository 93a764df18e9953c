"""The daemon's HTTP face on one port: /metrics, /healthz, /readyz, POST /predict, GET /model,
the status page at / (polling /status.json), and when turned on POST /learn and GET
/model/download.

Connections are read on an event loop (``streamlearn.observe.connections``: a slow client
holds no thread, and each request has a deadline); a few worker threads answer complete
requests with ``http.server``'s request parsing. Nothing here touches the learner: what it
needs arrives as callables from the run loop, safe to call from any thread.
"""

from __future__ import annotations

import errno
import gzip
import logging
import math
import socket
from collections.abc import Callable, Collection, Mapping
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from streamlearn.keys.fields import key_text
from streamlearn.observe.connections import ConnectionFront, Limits
from streamlearn.observe.json_bodies import (
    BadRequest,
    Example,
    Query,
    finite_or_null,
    parse_examples,
    parse_queries,
)
from streamlearn.observe.replies import Replies
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

#: Why a write endpoint answers 403 when it was not turned on.
_OFF = "{endpoint} is off: start the daemon with {flag} (it has no authentication)"


class MetricsServerError(RuntimeError):
    """The HTTP face cannot start (port in use, bad address)."""


class _Handler(Replies):
    """The routes of the HTTP face and their endpoints."""

    max_body_bytes = MAX_BODY_BYTES

    def __init__(self, app: MetricsServer, request: bytes, client_address: tuple[str, int]):
        self.app = app
        super().__init__(request, client_address)

    # -- routing ------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._route(_GET_ROUTES, "; try /metrics")

    def do_POST(self) -> None:
        self._route(_POST_ROUTES)

    def other_method(self) -> None:
        """PUT, DELETE, OPTIONS, TRACE, PATCH or any other method: 405 on a known path."""
        self._route({})

    def _route(self, routes: Routes, hint: str = "") -> None:
        """The endpoint of this path in ``routes``; a 405 on a path another method answers."""
        path = urlsplit(self.path).path
        endpoint = routes.get(path)
        if endpoint is not None:
            endpoint(self)
        elif path in _POST_ROUTES:
            self._method_not_allowed("POST")
        elif path in _GET_ROUTES:
            self._method_not_allowed("GET, HEAD")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such path {path}{hint}"})

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
            role = self.app.role() if self.app.role is not None else None
            self._text(HTTPStatus.OK, f"ready: {role}\n" if role else "ready\n")
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
            body = self._read_body()
            queries, batch = parse_queries(body, app.expected_features(), app.key_info is not None)
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
        for served in answers:
            prediction, model_version, ignored, probabilities = served[:4]
            if not isinstance(prediction, str) and not math.isfinite(prediction):
                # A diverged model must not hand NaN/inf to a client that will act on it.
                app.count("unavailable")
                error = "the model produced a non-finite prediction"
                document = {"error": error, "model_version": model_version}
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, document)
                return
            answer: dict[str, object] = {
                "prediction": prediction if isinstance(prediction, str) else float(prediction),
                "model_version": int(model_version),
            }
            if probabilities is not None:  # a classifier's: {class: probability}
                answer["probabilities"] = probabilities
            if ignored:
                answer["ignored_features"] = list(ignored)
            if isinstance(served, Prediction) and served.key is not None:
                answer["key"] = served.key
                if served.fallback is not None:  # a key without a model: the fallback's
                    answer["fallback"] = served.fallback
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
            body, keyed = self._read_body(), app.key_info is not None
            examples = parse_examples(body, app.target, app.expected_features(), app.labels, keyed)
            learned = app.learn(examples)
        except BadRequest as exc:
            self._json(exc.status, {"error": str(exc)})
            return
        except ModelUnavailable as exc:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"cannot learn now: {exc}"})
            return
        self._json(HTTPStatus.OK, learned.document())

    def _healthz(self) -> None:
        self._text(HTTPStatus.OK, "ok\n")

    def _status(self) -> None:
        self._json(HTTPStatus.OK, finite_or_null(self.app.status.document()), cache=False)

    def _model(self) -> None:
        """``GET /model``, or with ``?key=K`` a keyed daemon's model of that key (404: none)."""
        keys = parse_qs(urlsplit(self.path).query, keep_blank_values=True).get("key")
        app = self.app
        key = key_text(keys[0]) if keys is not None else ""  # read as /predict reads a key
        if keys is None:
            self._json(HTTPStatus.OK, finite_or_null(app.model_info()))
        elif app.key_info is None:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "this daemon has one model (no --key-by)"})
        elif not isinstance(key, str):
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"?key=: {key[1]}"})
        else:
            info = app.key_info(key)
            if info is None:
                error = f"no model for key {key!r}: no labeled record of it learned yet"
                self._json(HTTPStatus.NOT_FOUND, {"error": error})
            else:
                self._json(HTTPStatus.OK, finite_or_null(info))

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


#: Paths, each the endpoint that answers it; any other method on them is a 405.
Routes = dict[str, Callable[[_Handler], None]]
_GET_ROUTES: Routes = {
    "/metrics": _Handler._metrics,
    "/healthz": _Handler._healthz,
    "/readyz": _Handler._readyz,
    "/model": _Handler._model,
    "/": _Handler._page,
    "/status.json": _Handler._status,
    "/model/download": _Handler._download,
}
_POST_ROUTES: Routes = {"/predict": _Handler._predict, "/learn": _Handler._learn}


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
    learn, download, target, labels
        ``POST /learn`` (its records' label is under ``target``; ``labels``: a classifier's,
        label text) and ``GET /model/download``; each answers 403 while None (off).
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
        labels: bool = False,
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
        self.labels = labels
        #: A keyed daemon's ``/model?key=K`` (None: not keyed); None answers 404.
        self.key_info: Callable[[str], Mapping[str, object] | None] | None = None
        #: An instance of a group's role (``active``/``standby``), said by ``/readyz``.
        self.role: Callable[[], str] | None = None
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
