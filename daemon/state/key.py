"""The key that signs a state dir's checkpoints (HMAC-SHA256): where it is kept, who may hold it.

Unpickling runs whatever code the pickle names, so a checkpoint is loaded only when it
was signed with the key of its state dir. The key is ``STREAMLEARN_STATE_KEY`` when set
(hex or base64), else the file ``hmac.key`` in the state dir, made at first use, mode
0600, owned by the user that runs the daemon. Whoever can write the directory but not
read that file cannot forge a checkpoint; whoever can read it (the daemon's user, root)
can, which is why reading a state dir another user owns needs ``--trust``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import os
import pwd
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, Protocol

from .format import CheckpointError

__all__ = [
    "KEY_NAME",
    "KEY_VARIABLE",
    "NotOwned",
    "StateKey",
    "check_owner",
    "disk_full",
    "parse_secret",
    "state_key",
    "write_key",
]

#: The key file in a state dir.
KEY_NAME = "hmac.key"
#: Seconds an empty key file is taken for one being written (then: a corrupt key).
KEY_WRITE_SECONDS = 5.0
#: The variable that holds the key instead of the file (hex or base64, at least 16 bytes).
KEY_VARIABLE = "STREAMLEARN_STATE_KEY"
#: Bytes of a key made at first use.
KEY_BYTES = 32
_MIN_KEY_BYTES = 16
_BLOCK = 64  # SHA-256's block size, which HMAC pads the key to


class _Hash(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


#: A SHA-256 constructor: ``hashlib.sha256``, or the forked child's lock-free one.
Sha256 = Callable[[], _Hash]


#: What a reader does to trust a state dir another user owns.
TRUST_HINT = (
    "pass --trust (inspect, report) or --trust-pickle (a warm start) if you trust that user"
)


class NotOwned(CheckpointError):
    """A state dir (or its key) belongs to another user, and no one said to trust it."""


class StateKey:
    """A secret that signs checkpoints; ``mac`` is HMAC-SHA256 (RFC 2104) computed here.

    HMAC is written out rather than taken from ``hmac``: the forked checkpoint child
    must hash with CPython's own SHA-256 (OpenSSL's may wait on a lock that a thread
    of the parent held at the fork), and ``hmac.new`` picks OpenSSL when it can. The
    result is the same bytes as ``hmac.new(secret, payload, hashlib.sha256)``.

    >>> import hmac
    >>> key = StateKey(bytes(range(32)))
    >>> key.mac(b"state") == hmac.new(bytes(range(32)), b"state", hashlib.sha256).digest()
    True
    >>> key
    StateKey(id=...)
    """

    __slots__ = ("_inner", "_outer", "_secret", "id", "origin")

    def __init__(self, secret: bytes, origin: str = "a key given in code") -> None:
        if len(secret) < _MIN_KEY_BYTES:
            raise ValueError(
                f"a state key needs at least {_MIN_KEY_BYTES} bytes, not {len(secret)}"
            )
        self._secret = bytes(secret)
        block = hashlib.sha256(secret).digest() if len(secret) > _BLOCK else secret
        block = block.ljust(_BLOCK, b"\0")
        self._inner = bytes(b ^ 0x36 for b in block)
        self._outer = bytes(b ^ 0x5C for b in block)
        #: Where the key came from, for messages (a path, or the variable's name).
        self.origin = origin
        #: 8 bytes that name the key in each frame without telling anything about it.
        self.id = self.mac(b"streamlearn state key id")[:8]

    def mac(self, payload: bytes | memoryview, sha256: Sha256 = hashlib.sha256) -> bytes:
        """HMAC-SHA256 of ``payload``; ``sha256`` takes no lock when it is the child's.

        The payload is hashed where it lies (``update``), never copied: it may be most
        of the process's memory.
        """
        inner = sha256()
        inner.update(self._inner)
        inner.update(payload)
        outer = sha256()
        outer.update(self._outer)
        outer.update(inner.digest())
        return outer.digest()

    def keep_in(self, directory: Path) -> None:
        """Write this key as ``directory``'s key file if it came from one and none is there.

        For a state dir deleted under the daemon and recreated: its next checkpoints
        must be readable by the next start. A key from ``STREAMLEARN_STATE_KEY`` stays
        out of the directory.
        """
        if self.origin != KEY_VARIABLE:
            with contextlib.suppress(FileExistsError):
                write_key(directory, self._secret)

    def __repr__(self) -> str:
        return f"StateKey(id={self.id.hex()})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a state key is never pickled (it would end up in a checkpoint)")


def parse_secret(text: str) -> bytes:
    """A key written as hex (``openssl rand -hex 32``) or base64 (``openssl rand -base64 32``).

    Text of hex digits only, of even length, is hex; anything else is base64.

    >>> parse_secret("00" * 16) == bytes(16)
    True
    >>> parse_secret("AAAAAAAAAAAAAAAAAAAAAA==") == bytes(16)
    True
    """
    text = text.strip()
    if len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
        return bytes.fromhex(text)
    standard = text.replace("-", "+").replace("_", "/")  # the URL-safe alphabet too
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"neither hex nor base64: {exc}") from None


def _user(uid: int) -> str:
    with contextlib.suppress(KeyError):
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    return f"uid {uid}"


def check_owner(directory: Path, *, trust: bool, hint: str = TRUST_HINT) -> None:
    """``NotOwned`` unless ``directory`` belongs to this user (or ``trust``).

    Whoever owns a state dir can write its key and so sign anything: reading what
    another user wrote runs code that user chose, as this user. ``hint``: what to
    do about it, the end of the message.
    """
    if trust:
        return
    try:
        owner = directory.stat().st_uid
    except OSError:
        return  # missing or unreadable: the store says so in its own words
    me = os.geteuid()
    if owner != me:
        raise NotOwned(
            f"{directory} is owned by {_user(owner)}, not by you ({_user(me)}): loading its "
            f"checkpoints runs code that user can choose; {hint}"
        )


def state_key(directory: Path, *, create: bool, trust: bool = False) -> StateKey | None:
    """The key of the state dir ``directory``: ``STREAMLEARN_STATE_KEY``, else its key file.

    ``create``: make the file when missing (the daemon, at first use); else None when
    there is none. Without ``trust`` the file must belong to this user and be private
    (mode 0600): a key another user could write or read proves nothing.
    ``CheckpointError`` (one line) for a key that cannot be used.
    """
    text = os.environ.get(KEY_VARIABLE, "").strip()
    if text:
        try:
            return StateKey(parse_secret(text), KEY_VARIABLE)
        except ValueError as exc:
            raise CheckpointError(f"{KEY_VARIABLE} is not a usable key: {exc}") from None
    path = directory / KEY_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            if not create:
                return None
            secret = secrets.token_bytes(KEY_BYTES)
            try:
                write_key(directory, secret)
            except FileExistsError:
                continue  # another process made it first
            except CheckpointError as exc:
                if not disk_full(exc):
                    raise
                # Kept in memory: the store writes it before the first checkpoint signed
                # with it, once there is space (``CheckpointStore``).
            return StateKey(secret, str(path))
        except OSError as exc:
            raise CheckpointError(_unreadable(path, exc)) from None
        try:
            if _being_written(fd):
                time.sleep(0.05)
                continue  # another instance of a group has just created it
            return _read_key(path, fd, trust)
        finally:
            os.close(fd)


def disk_full(exc: CheckpointError) -> OSError | None:
    """The full-disk error (ENOSPC, EDQUOT) that made writing a key fail, else None."""
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
        return cause
    return None


def _unreadable(path: Path, exc: OSError) -> str:
    hint = ""
    if exc.errno in (errno.EACCES, errno.EPERM):
        hint = f": run as the user that owns it, or set {KEY_VARIABLE}"
    elif exc.errno == errno.ELOOP:
        hint = ": a key file may not be a symbolic link"
    return f"cannot read the state key {path}: {exc.strerror}{hint}"


def _being_written(fd: int) -> bool:
    """An empty key file made in the last seconds: its writer (``write_key``, which creates it
    with ``O_EXCL`` before it writes) is another process sharing the directory, mid-write."""
    status = os.fstat(fd)
    return status.st_size == 0 and time.time() - status.st_mtime < KEY_WRITE_SECONDS


def _read_key(path: Path, fd: int, trust: bool) -> StateKey:
    status = os.fstat(fd)
    if not trust:
        if status.st_uid != os.geteuid():
            raise NotOwned(
                f"the state key {path} is owned by {_user(status.st_uid)}, not by you "
                f"({_user(os.geteuid())}): that user can sign any checkpoint; {TRUST_HINT}"
            )
        if stat.S_IMODE(status.st_mode) & 0o077:
            raise CheckpointError(
                f"the state key {path} can be read or written by others (mode "
                f"{stat.S_IMODE(status.st_mode):04o}): chmod 600 {path}"
            )
    with os.fdopen(os.dup(fd), "rb") as handle:
        text = handle.read(4096).decode("ascii", errors="replace")
    try:
        return StateKey(parse_secret(text), str(path))
    except ValueError as exc:
        raise CheckpointError(f"the state key {path} is not a usable key: {exc}") from None


def write_key(directory: Path, secret: bytes) -> None:
    """Write ``secret`` (hex) as the key file of ``directory``: new, 0600, durable.

    ``FileExistsError`` when the directory has a key already (never overwritten).
    """
    path = directory / KEY_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise
    except OSError as exc:  # the cause is kept: ``disk_full`` asks it
        raise CheckpointError(f"cannot create the state key {path}: {exc.strerror}") from exc
    try:
        os.write(fd, secret.hex().encode() + b"\n")
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write the state key {path}: {exc.strerror}") from exc
    os.close(fd)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
