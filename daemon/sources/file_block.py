"""A block of whole lines of a file: the unit the compiled fast path reads.

``FileSource.next_block`` hands blocks out; ``Block.raws`` gives the same lines as
``next_batch`` would, for the record path.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamlearn.sources.base import Raw


@dataclass(frozen=True, slots=True)
class Block:
    """Whole lines of a file as one byte string: what the compiled fast path reads.

    ``data`` holds ``lines`` complete lines (each with its newline, none over the
    line limit) starting at file offset ``offset``. ``len()`` counts lines, like
    the length of a ``next_batch`` list, so the run loop paces both alike.
    """

    data: bytes
    offset: int
    lines: int

    def __len__(self) -> int:
        return self.lines

    def raws(self) -> list[Raw]:
        """The same lines as ``next_batch`` hands them out, one ``Raw`` each."""
        out = []
        start = self.offset
        for line in self.data.split(b"\n")[: self.lines]:
            out.append(Raw(line + b"\n", start))
            start += len(line) + 1
        return out
