"""The HTTP face's connections: read on one event loop, answered by a few worker threads.

A client that trickles its request holds a socket and a buffer here, never a worker thread,
and has a total deadline to send the whole request; only complete requests reach the
workers. So slow or idle clients cannot keep ``/healthz`` or ``/metrics`` from answering.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import http.client
import io
import json
import logging
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

__all__ = ["Answer", "ConnectionFront", "Limits"]

log = logging.getLogger(__name__)

#: ``(request bytes, client address) -> (response bytes, close the connection after it)``;
#: called on a worker thread with one complete request (its head and its body).
Answer = Callable[[bytes, tuple[str, int]], tuple[bytes, bool]]


@dataclass(frozen=True)
class Limits:
    """How long and how much a client may take, and how many are served at once."""

    #: Seconds from a request's first byte to its last.
    request_deadline: float = 10.0
    #: Seconds a connection may wait for its next request (keep-alive).
    idle_timeout: float = 5.0
    #: Seconds a client may take to read an answer.
    write_timeout: float = 10.0
    #: The request line and headers together.
    max_header_bytes: int = 64 * 1024
    #: Bodies up to this size are read and handed on; larger ones are answered 413.
    max_body_bytes: int = 64 * 1024
    #: Larger bodies up to this size are read and dropped before the 413: closing a socket
    #: with unread data sends a TCP reset that can destroy the answer before it is read.
    drain_bytes: int = 1024 * 1024
    #: Open connections; more are answered 503 and closed.
    max_connections: int = 1024
    #: Threads answering complete requests.
    workers: int = 16

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")


def _error_response(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode() + b"\n"
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _declared_body(headers: Message) -> tuple[int, bool]:
    """The body bytes a request declares, and whether the connection can carry on after it.

    A chunked body or a bad ``Content-Length`` is left unread: the answer says what is
    wrong and the connection closes, so the rest is never read as a request.
    """
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return 0, False
    value = headers.get("Content-Length")
    if value is None:
        return 0, True
    try:
        length = int(value)
    except ValueError:
        return 0, False
    return (length, True) if length >= 0 else (0, False)


class _Workers:
    """A fixed set of daemon threads (a hung answer must not keep the process alive at exit)."""

    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[concurrent.futures.Future[tuple[bytes, bool]], Callable[[], tuple[bytes, bool]]]
            | None
        ] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-worker-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self, job: Callable[[], tuple[bytes, bool]]
    ) -> concurrent.futures.Future[tuple[bytes, bool]]:
        future: concurrent.futures.Future[tuple[bytes, bool]] = concurrent.futures.Future()
        self._jobs.put((future, job))
        return future

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            future, job = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as exc:
                future.set_exception(exc)

    def stop(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)


class ConnectionFront:
    """Serves a listening socket: requests read on an event loop thread, answered by workers.

    Parameters
    ----------
    sock
        A bound, listening TCP socket (closed by ``stop``).
    answer
        Turns one complete request into its response (runs on a worker thread).
    limits
        Deadlines, sizes and counts.
    name
        Prefix of the threads' names.
    """

    def __init__(self, sock: socket.socket, answer: Answer, limits: Limits, name: str) -> None:
        self._sock = sock
        self._answer = answer
        self.limits = limits
        self._name = name
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._workers: _Workers | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        """Serve from a daemon thread; returns once the socket is served."""
        self._workers = _Workers(self.limits.workers, self._name)
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"{self._name}-connections", daemon=True
        )
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(
                self._connection, sock=self._sock, limit=self.limits.max_header_bytes
            ),
            self._loop,
        ).result()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the socket and every connection, and end the threads."""
        if self._thread is None:
            return
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()
        if self._workers is not None:
            self._workers.stop()
        self._thread = None

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- one connection -----------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limits = self.limits
        if len(self._connections) >= limits.max_connections:
            writer.write(_error_response(503, "Service Unavailable", "too many connections"))
            await self._close_writer(writer)
            return
        self._connections.add(writer)
        peer = writer.get_extra_info("peername") or ("?", 0)
        try:
            while True:
                request = await self._read_request(reader, writer)
                if request is None:
                    break
                whole, keep = request
                assert self._workers is not None
                future = self._workers.submit(functools.partial(self._answer, whole, peer[:2]))
                response, close = await asyncio.wrap_future(future)
                writer.write(response)
                async with asyncio.timeout(limits.write_timeout):
                    await writer.drain()
                if close or not keep:
                    break
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away, or would not read its answer
        except asyncio.CancelledError:
            # ``stop`` cancels us. Ending cancelled would make asyncio's stream callback
            # (Python 3.11) log the CancelledError as an error: end quietly instead.
            pass
        except Exception:
            log.exception("error on an HTTP connection from %s", peer[0])
        finally:
            self._connections.discard(writer)
            await self._close_writer(writer)

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[bytes, bool] | None:
        """One whole request and whether the connection may carry on; None to close quietly.

        A request that misses its deadline or has oversized headers is answered here.
        """
        limits = self.limits
        try:
            async with asyncio.timeout(limits.idle_timeout):
                first = await reader.read(1)
        except TimeoutError:
            return None
        if not first:
            return None
        deadline = asyncio.get_running_loop().time() + limits.request_deadline
        try:
            async with asyncio.timeout_at(deadline):
                head = first + await reader.readuntil(b"\r\n\r\n")
                return await self._read_body(reader, writer, head)
        except TimeoutError:
            seconds = f"{limits.request_deadline:g}"
            message = f"the request was not complete within {seconds} s"
            writer.write(_error_response(408, "Request Timeout", message))
        except asyncio.LimitOverrunError:
            message = f"request line and headers are over {limits.max_header_bytes} bytes"
            writer.write(_error_response(431, "Request Header Fields Too Large", message))
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(1.0):
                await writer.drain()
        return None

    async def _read_body(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> tuple[bytes, bool]:
        limits = self.limits
        try:
            headers = http.client.parse_headers(io.BytesIO(head.partition(b"\r\n")[2]))
        except http.client.HTTPException:
            return head, False  # the answer says what is wrong with the headers
        length, keep = _declared_body(headers)
        if length > limits.drain_bytes:
            return head, False  # answered 413 without reading the body
        if headers.get("Expect", "").lower() == "100-continue" and length <= limits.max_body_bytes:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if length > limits.max_body_bytes:
            await reader.readexactly(length)  # dropped: the answer is a 413
            return head, False
        body = await reader.readexactly(length) if length else b""
        return head + body, keep

    async def _close_writer(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
