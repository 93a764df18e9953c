"""The group member's HTTP face: ``/metrics``, and ``/predict`` for any key of the topic.

A key of a partition this instance owns is answered by that partition's learner (a child
serving on a loopback port; its answer is passed on as it is). A key of a partition another
instance owns gets ``421 Misdirected Request`` with that instance's address, from the owner
record of the partition's newest epoch (each instance writes its address there when it takes
a partition over); ``503`` with the reason when the owner has no address or the partition is
being taken over; ``404`` when no partition holds the key.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import urllib.error
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from streamlearn.scaleout.inspect import locate_key

if TYPE_CHECKING:
    from streamlearn.config import Settings
    from streamlearn.scaleout.member import Member

__all__ = ["advertised_address", "serve_member"]

log = logging.getLogger(__name__)

#: Bytes of a ``/predict`` body at most.
MAX_BODY = 1 << 20
#: Seconds a learner has to answer a forwarded ``/predict``.
FORWARD_TIMEOUT_S = 5.0


def advertised_address(settings: Settings) -> str | None:
    """The address other instances send a key's clients to: ``STREAMLEARN_ADVERTISED_URL``,
    else ``http://HOST:PORT`` of ``--metrics-host``/``--metrics-port`` (None: no port)."""
    given = os.environ.get("STREAMLEARN_ADVERTISED_URL")
    if given:
        return given.rstrip("/")
    if settings.metrics_port is None:
        return None
    host = settings.metrics_host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://{host}:{settings.metrics_port}"


def _forward(url: str, body: bytes) -> tuple[int, bytes] | None:
    """POST ``body`` to a learner; its status and answer, None when it does not answer."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=FORWARD_TIMEOUT_S) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, ValueError):  # not listening yet (starting), or gone (stopping)
        return None


class _Handler(BaseHTTPRequestHandler):
    member: Member
    registry: Any

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, document: dict[str, Any]) -> None:
        self._send(status, json.dumps(document).encode())

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            self._send(HTTPStatus.OK, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        elif self.path.split("?")[0] in ("/healthz", "/readyz"):
            owned = sorted(self.member.learners)
            self._json(HTTPStatus.OK, {"instance": self.member.instance, "partitions": owned})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no {self.path} here"})

    def do_POST(self) -> None:
        if self.path.split("?")[0] != "/predict":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no POST {self.path} here"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
            return
        body = self.rfile.read(length)
        try:
            query = json.loads(body)
        except ValueError:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "the body is not JSON"})
            return
        if not isinstance(query, dict) or not isinstance(query.get("key"), str):
            self._json(
                HTTPStatus.BAD_REQUEST,
                {"error": 'one query {"key": K, "x": {...}} at a time on a scaled-out instance'},
            )
            return
        status, answer = self._answer(query["key"], body)
        self._send(status, answer)

    def _answer(self, key: str, body: bytes) -> tuple[int, bytes]:
        member = self.member
        fallback: tuple[int, bytes] | None = None
        for learner in list(member.learners.values()):
            if learner.http is None:
                continue
            answered = _forward(f"{learner.http}/predict", body)
            if answered is None:
                continue
            status, answer = answered
            if status == HTTPStatus.OK and b'"fallback"' not in answer:
                return answered
            if status == HTTPStatus.OK and fallback is None:
                fallback = answered
        item = locate_key(member.state_dir, key)
        if item is None:
            if fallback is not None:
                return fallback
            missing = {"error": f"no model for key {key!r} in any partition"}
            return HTTPStatus.NOT_FOUND, json.dumps(missing).encode()
        owner = item["owner"]
        partition = item["partition"]
        where: dict[str, Any] = {"key": key, "partition": partition, "owner": owner.get("instance")}
        if owner.get("instance") == member.instance:
            error = f"partition {partition} is being taken over here; retry shortly"
            return HTTPStatus.SERVICE_UNAVAILABLE, json.dumps({**where, "error": error}).encode()
        address = owner.get("address")
        if address is None:
            error = (
                f"partition {partition} is owned by {owner.get('instance')}, which serves no HTTP"
            )
            return HTTPStatus.SERVICE_UNAVAILABLE, json.dumps({**where, "error": error}).encode()
        document = {**where, "address": address, "error": f"key {key!r} is served at {address}"}
        return HTTPStatus.MISDIRECTED_REQUEST, json.dumps(document).encode()


def serve_member(settings: Settings, member: Member, registry: Any) -> ThreadingHTTPServer:
    """Serve the member's HTTP face on ``--metrics-host``/``--metrics-port``, in a thread."""
    assert settings.metrics_port is not None
    handler = type("Handler", (_Handler,), {"member": member, "registry": registry})
    server = ThreadingHTTPServer((settings.metrics_host, settings.metrics_port), handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, name="streamlearn-member-http", daemon=True
    ).start()
    return server
