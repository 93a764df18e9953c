"""Stopping the HTTP face while a request is being answered (a standby hands its port over
mid-request): the client is cut off, the log stays clean and the port is free again."""

from __future__ import annotations

import logging
import socket
import threading

import pytest

from streamlearn.observe.connections import ConnectionFront, Limits


def test_stop_with_a_request_in_flight_logs_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    entered, release, answered = threading.Event(), threading.Event(), threading.Event()

    def answer(request: bytes, peer: tuple[str, int]) -> tuple[bytes, bool]:
        entered.set()
        release.wait(10)
        answered.set()
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True

    listening = socket.create_server(("127.0.0.1", 0))
    address = listening.getsockname()
    front = ConnectionFront(listening, answer, Limits(workers=1), "stop-test")
    front.start()
    caplog.set_level(logging.DEBUG)
    with socket.create_connection(address, timeout=5) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert entered.wait(5)
        front.stop(timeout=5)
        release.set()
        assert answered.wait(5)
        assert client.recv(100) == b""  # cut off, no half answer
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert [r.getMessage() for r in problems] == []
    socket.create_server(address).close()  # the port is free for the next owner
