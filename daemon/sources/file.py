"""Local files as a stream: replayed to the end, or followed like ``tail -F``.

The position is the file's identity (device, inode, a fingerprint of its first
bytes) plus the byte offset after the last complete line handed out. A line is
complete when its newline has been written, so a writer caught mid-line is never
read half. Following survives rename rotation (the old file is read until it has
been quiet for ``rotate_wait`` seconds, as Filebeat's ``close_inactive``, then the
new one is opened) and copy-truncate (the file shrinks under us: start again at 0).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from streamlearn.sources.base import PositionMismatch, Raw, Source, SourceError
from streamlearn.sources.file_arrivals import ReadLog
from streamlearn.sources.file_block import Block
from streamlearn.sources.file_identity import (
    find_by_identity,
    renamed_away,
    resume_offset,
    saved_position,
)

log = logging.getLogger(__name__)

#: Bytes of the last read a followed file must still hold before the next read: when
#: they changed, it was truncated and refilled (copy-truncate) while we were not looking.
_LAST_READ_BYTES = 64
#: A UTF-8 byte-order mark: at the start of a file it is not data (a header or value follows).
_BOM = b"\xef\xbb\xbf"
#: Reads one ``next_batch`` makes at most: skipping the rest of an over-long line (a line
#: that never ends: ``/dev/zero``) goes on at the next call, so the loop hears a stop signal.
_READS_PER_BATCH = 8


class FileSource(Source):
    """Lines of a local file.

    Parameters
    ----------
    path
        The file. In follow mode it may not exist yet: it is waited for.
    follow
        False: a finite replay that ends at end of file (the last line may lack its
        newline). True: wait for more lines like ``tail -F``.
    resume
        A ``snapshot()`` from an earlier run. A different file raises ``PositionMismatch``.
        Following, a file renamed away since (rotated) is found by its inode in the same
        directory and read to its end first.
    max_line_bytes
        Longer lines are handed out truncated (``Raw.truncated``) for the dead letters.
    read_size
        Bytes read per system call: a couple of the compiled path's blocks (8192 lines,
        about 0.85 MiB of a 10-feature CSV), so that most blocks need no read of their
        own. Not more: each read and buffer copy lands in fresh pages, and a larger
        buffer no longer fits in the cache (docs/design.md has the figures).
    rotate_wait
        Following, after the file was renamed away and a new one created in its place:
        seconds the old file must stay quiet (its writer may still append to it) before
        the source switches to the new one. Its position is the checkpoint's meanwhile.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
    >>> _ = path.write_bytes(b"x,y\\n1,2\\n3,4\\n5,")
    >>> source = FileSource(path, follow=True)
    >>> [raw.value for raw in source.next_batch(10)]
    [b'x,y\\n', b'1,2\\n', b'3,4\\n']
    >>> source.snapshot()["offset"]
    12
    >>> source.close()
    """

    kind = "file"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        follow: bool = False,
        resume: Mapping[str, Any] | None = None,
        max_line_bytes: int = 1 << 20,
        read_size: int = 2 << 20,
        rotate_wait: float = 5.0,
    ) -> None:
        if max_line_bytes < 16:
            raise ValueError("max_line_bytes must be at least 16")
        if not rotate_wait >= 0:
            raise ValueError("rotate_wait must be 0 or more seconds")
        self.path = Path(path)
        self.follow = follow
        self.max_line_bytes = max_line_bytes
        self.read_size = read_size
        self.rotate_wait = rotate_wait
        self._handle: IO[bytes] | None = None
        self._stat: os.stat_result | None = None
        self._buffer = b""
        self._buffer_start = 0  # file offset of _buffer[0]
        self._offset = 0  # offset after the last complete line handed out
        self._discarding = False  # inside an over-long line, skipping to its newline
        self._line_bytes = 128.0  # average line length of the last block (next_block's guess)
        self._at_eof = False
        self._exhausted = False
        self._waiting_logged = False
        # While a rotated-away file is read to its end: its size and when it last grew.
        self._drain: tuple[int, float] | None = None
        self._open(resume)

    # -- opening and identity -------------------------------------------------

    def _open(self, resume: Mapping[str, Any] | None) -> None:
        if resume is not None:
            if resume.get("kind") != "file":
                raise PositionMismatch(
                    f"the checkpoint was written for a {resume.get('kind')} source, not a file; "
                    "use --reset to start over"
                )
            if self.follow and self._resume_rotated(resume):
                return
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - lives as long as the source
        except FileNotFoundError:
            if not self.follow:
                raise SourceError(f"no such file: {self.path}") from None
            if resume is not None and resume.get("inode") is not None:
                raise PositionMismatch(
                    f"the checkpoint reads {resume.get('path')} at byte {resume.get('offset')}, "
                    f"but {self.path} does not exist; use --reset to start over"
                ) from None
            return  # waited for in next_batch (also when the state was saved waiting for it)
        except OSError as exc:
            raise SourceError(f"cannot open {self.path}: {exc.strerror}") from None
        if os.path.isdir(self.path):
            handle.close()
            raise SourceError(f"{self.path} is a directory, not a file")
        self._attach(handle)
        if resume is not None:
            self._resume(resume, truncated=self.follow)

    def _attach(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._stat = os.fstat(handle.fileno())
        self._buffer, self._buffer_start, self._offset = b"", 0, 0
        self._discarding = self._at_eof = False
        self._reads = ReadLog()  # for arrivals(): when the bytes not yet handed out were read
        self._last_read = b""  # the last bytes read, up to the read position

    def _resume_rotated(self, resume: Mapping[str, Any]) -> bool:
        """Resume a followed file that was renamed away since the checkpoint; False if not.

        The file is found by its identity in the same directory and read to its end
        before the file now at the path. One that was being drained and is gone since
        leaves the new file, read from its start.
        """
        if not renamed_away(self.path, resume):
            return False
        old = find_by_identity(self.path.parent, resume["device"], resume["inode"])
        if old is not None:
            try:
                self._attach(open(old, "rb"))  # noqa: SIM115 - lives as long as the source
                self._resume(resume, truncated=True)
            except OSError:
                self.close()  # removed while we looked
            else:
                log.info(
                    "%s was rotated to %s since the checkpoint; reading the rest of it first",
                    self.path,
                    old,
                )
                return True
        if not resume.get("draining"):
            return False  # the file at the path is checked as it is
        log.warning(
            "%s, the rotated-away file read up to byte %s, is gone; "
            "following the new %s from its start",
            resume.get("path"),
            resume.get("offset"),
            self.path,
        )
        self._try_open_later()
        return True

    def _resume(self, resume: Mapping[str, Any], *, truncated: bool = False) -> None:
        """Go to the saved position in the file attached (``resume_offset``)."""
        assert self._handle is not None and self._stat is not None
        offset = resume_offset(self._handle, self._stat, self.path, resume, truncated=truncated)
        self._handle.seek(offset)
        self._buffer_start = self._offset = offset
        self._discarding = bool(offset and resume.get("discarding", False))

    # -- the Source contract --------------------------------------------------

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    def describe(self) -> str:
        return f"file:{self.path}"

    def snapshot(self) -> dict[str, Any]:
        if self._handle is None or self._stat is None:
            return saved_position(self.path, None, None, 0, discarding=False, draining=False)
        return saved_position(
            self.path,
            self._handle.fileno(),
            self._stat,
            self._offset,
            discarding=self._discarding,
            draining=self._drain is not None,
        )

    def size(self) -> int | None:
        """The current size of the open file (for progress bars)."""
        if self._handle is None:
            return None
        return os.fstat(self._handle.fileno()).st_size

    def next_batch(self, max_items: int) -> list[Raw]:
        out: list[Raw] = []
        if self._exhausted:
            return out
        if self._handle is None and not self._try_open_later():
            return out
        reads = 0
        while len(out) < max_items:
            if self._take_lines(out, max_items):
                continue
            if reads == _READS_PER_BATCH or not self._fill():
                break
            reads += 1
        if not out and self._at_eof:
            self._on_idle_eof(out)
        if out and self.track_arrivals:
            self._arrivals = self._reads.of_lines(out)
        return out

    def next_block(self, max_lines: int) -> Block | None:
        """Up to ``max_lines`` whole lines as one ``Block``, for the compiled fast path.

        Returns None whenever the careful per-line ``next_batch`` must take over:
        nothing complete is buffered at end of file (a partial last line, rotation,
        idling), an over-long line comes first, or such a line is being skipped.
        The position moves past the block, exactly as if ``next_batch`` had handed
        out its lines.
        """
        if self._exhausted or self._handle is None or self._discarding:
            return None
        at_eof = False
        while True:
            block = self._take_block(max_lines, at_eof=at_eof)
            if block is not None and self.track_arrivals:
                self._arrivals = self._reads.of_block(block.offset, block.data, block.lines)
            if block is not None or at_eof:
                return block
            unread = len(self._buffer) - (self._offset - self._buffer_start)
            if unread > self.max_line_bytes:
                return None
            at_eof = not self._fill()

    def _take_block(self, max_lines: int, *, at_eof: bool) -> Block | None:
        """A block from the buffer; before end of file, only a full one (else read on).

        A block spans at most ``max_line_bytes`` bytes, so none of its lines can be
        over-long: an over-long line first leaves no block (the per-line path cuts it).
        """
        import numpy as np  # only the compiled fast path asks for blocks; it has numpy

        buffer = self._buffer
        start = self._offset - self._buffer_start
        window = min(len(buffer), start + self.max_line_bytes + 1)
        stop = buffer.rfind(b"\n", start, window) + 1  # past the last whole line in reach
        if stop <= start:
            return None
        # Cut near max_lines lines of the last block's length, count the newlines before
        # the cut at memory speed (numpy; bytes.count is eight times slower), then walk
        # the few lines to exactly max_lines (CSV lines are of similar length).
        guess = min(stop, start + int(self._line_bytes * max_lines))
        end = buffer.rfind(b"\n", start, guess) + 1 or start
        view = np.frombuffer(buffer, dtype=np.uint8, count=end - start, offset=start)
        lines = int(np.count_nonzero(view == 10))
        while lines > max_lines:
            end = buffer.rindex(b"\n", start, end - 1) + 1
            lines -= 1
        while lines < max_lines and end < stop:
            end = buffer.index(b"\n", end) + 1
            lines += 1
        if not lines or (lines < max_lines and window == len(buffer) and not at_eof):
            return None  # the read buffer ends here: read on rather than cut a short block
        # The consumed prefix stays in the buffer until the next _fill (no copy per block).
        self._offset = self._buffer_start + end
        self._line_bytes = (end - start) / lines
        return Block(buffer[start:end], self._buffer_start + start, lines)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = None

    # -- reading --------------------------------------------------------------

    def _take_lines(self, out: list[Raw], max_items: int) -> bool:
        """Move complete lines from the buffer to ``out``; False when more bytes are needed."""
        buffer = self._buffer
        position = self._offset - self._buffer_start
        took = False
        if not self._discarding:
            position = self._take_plain(out, max_items, buffer, position)
        while len(out) < max_items:
            newline = buffer.find(b"\n", position)
            if newline < 0:
                break
            start = self._buffer_start + position
            if self._discarding:
                self._discarding = False
            elif newline - position > self.max_line_bytes:
                head = buffer[position : position + self.max_line_bytes]
                out.append(Raw(head, start, truncated=True))
            else:
                out.append(Raw(buffer[position : newline + 1], start))
            position = newline + 1
            took = True
        self._offset = self._buffer_start + position
        # Drop what was handed out so the buffer holds only the unread tail.
        if position:
            self._buffer = buffer[position:]
            self._buffer_start += position
        if len(out) >= max_items:
            return True
        if len(self._buffer) > self.max_line_bytes:
            # An over-long line: hand its head out once, then skip to its newline.
            if not self._discarding:
                out.append(Raw(self._buffer[: self.max_line_bytes], self._offset, truncated=True))
                self._discarding = True
            self._buffer_start += len(self._buffer)
            self._offset = self._buffer_start
            self._buffer = b""
            return True
        return took and len(out) >= max_items

    def _take_plain(self, out: list[Raw], max_items: int, buffer: bytes, position: int) -> int:
        """Hand out whole lines with one ``split``: the common case, several times faster.

        Stops before an over-long line, a partial tail or ``max_items``; the careful
        loop in ``_take_lines`` deals with what is left. Returns the new position.
        """
        end = buffer.rfind(b"\n", position) + 1
        if end <= position:
            return position
        room = max_items - len(out)
        # At most room splits: the last part is the rest of the buffer (or the empty
        # string after the last newline), never handed out here.
        lines = buffer[position:end].split(b"\n", room)
        lines.pop()
        limit = self.max_line_bytes
        start = self._buffer_start + position
        append = out.append
        for line in lines:
            if len(line) > limit:
                break
            append(Raw(line + b"\n", start))
            start += len(line) + 1
        return start - self._buffer_start

    def _fill(self) -> bool:
        """Read more bytes; False at end of file."""
        assert self._handle is not None
        if self.follow and self._last_read and self._refilled():
            self._read_from_start(
                "was truncated and refilled (copy-truncate): the bytes before byte "
                f"{self._buffer_start + len(self._buffer)} changed"
            )
        chunk = self._handle.read(self.read_size)
        if not chunk:
            self._at_eof = True
            return False
        self._at_eof = False
        consumed = self._offset - self._buffer_start
        if consumed > 0:  # lines handed out by next_block: drop them now, with one copy
            self._buffer = self._buffer[consumed:]
            self._buffer_start = self._offset
        self._buffer += chunk
        if self._buffer_start == 0 and self._buffer.startswith(_BOM):
            self._buffer = self._buffer[len(_BOM) :]  # the first line starts after it
            self._buffer_start = self._offset = len(_BOM)
        if len(chunk) >= _LAST_READ_BYTES:
            self._last_read = chunk[-_LAST_READ_BYTES:]
        else:
            self._last_read = (self._last_read + chunk)[-_LAST_READ_BYTES:]
        if self.track_arrivals:
            self._reads.note(self._buffer_start + len(self._buffer))
        return True

    def _on_idle_eof(self, out: list[Raw]) -> None:
        """At end of file with nothing to hand out: finish a replay, or check for rotation."""
        if not self.follow:
            if self._buffer and not self._discarding:
                # A finished file's last line needs no newline.
                out.append(Raw(self._buffer, self._offset))
                self._offset += len(self._buffer)
                self._buffer_start = self._offset
                self._buffer = b""
            self._exhausted = True
            return
        self._check_rotation(out)

    def _check_rotation(self, out: list[Raw]) -> None:
        assert self._handle is not None and self._stat is not None
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return  # renamed away and not yet recreated: keep the old file
        if (current.st_dev, current.st_ino) != (self._stat.st_dev, self._stat.st_ino):
            if not self._drained():
                return
            # Rename rotation: the old file is fully drained (we are at its EOF, and it
            # has been quiet for rotate_wait); a partial last line there will never be
            # finished by its writer. The decoder judges it: a cut row is rejected,
            # never silently dropped.
            if self._buffer and not self._discarding:
                out.append(Raw(self._buffer, self._offset))
            log.info("%s was rotated; following the new file", self.path)
            self._drain = None
            self._handle.close()
            try:
                handle = open(self.path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                self._handle = None
                return
            self._attach(handle)
            return
        size = os.fstat(self._handle.fileno()).st_size
        if size < self._buffer_start + len(self._buffer):
            self._read_from_start(
                f"was truncated (copy-truncate) from {self._buffer_start + len(self._buffer)} "
                f"to {size} bytes"
            )

    def _refilled(self) -> bool:
        """True when the bytes before the read position are no longer the ones read there."""
        assert self._handle is not None
        end = self._buffer_start + len(self._buffer)
        length = len(self._last_read)
        return os.pread(self._handle.fileno(), length, end - length) != self._last_read

    def _read_from_start(self, why: str) -> None:
        """The followed file was truncated under us: read it again from byte 0 (says so)."""
        assert self._handle is not None
        log.warning("%s %s; reading it from the start", self.path, why)
        self._handle.seek(0)
        self._buffer, self._buffer_start, self._offset = b"", 0, 0
        self._discarding = False
        self._reads = ReadLog()
        self._last_read = b""
        self._stat = os.fstat(self._handle.fileno())

    def _drained(self) -> bool:
        """True once a rotated-away file, read to its end, has been quiet for rotate_wait.

        Its writer may still hold it open and append to it: until then it is read on.
        """
        assert self._handle is not None
        size = os.fstat(self._handle.fileno()).st_size
        now = time.monotonic()
        if self._drain is None or self._drain[0] != size:
            if self._drain is None and self.rotate_wait > 0:
                log.info(
                    "%s was rotated; reading the old file until it is quiet for %g s",
                    self.path,
                    self.rotate_wait,
                )
            self._drain = (size, now)
        return now - self._drain[1] >= self.rotate_wait

    def _try_open_later(self) -> bool:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            if not self._waiting_logged:
                log.info("waiting for %s to appear", self.path)
                self._waiting_logged = True
            return False
        self._attach(handle)
        return True
