"""In-memory sources and sinks, so that a pipeline test is ten lines (after Bytewax's ``testing``).

>>> source = ListSource([b"a", b"b", b"c"])
>>> [raw.value for raw in source.next_batch(2)], source.snapshot()
([b'a', b'b'], {'kind': 'list', 'index': 2})
>>> [raw.value for raw in source.next_batch(2)], source.exhausted
([b'c'], False)
>>> source.next_batch(2), source.exhausted
([], True)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streamlearn.sinks.jsonlines import ListSink
from streamlearn.sources.base import PositionMismatch, Raw, Source

__all__ = ["ListSink", "ListSource"]


class ListSource(Source):
    """Hands out the given byte strings in order; resumable by index.

    ``follow=True`` makes it behave like a live source: it never reports
    exhaustion, and ``extend()`` adds items later.
    """

    kind = "list"

    def __init__(
        self,
        items: Iterable[bytes],
        *,
        resume: dict[str, Any] | None = None,
        follow: bool = False,
    ) -> None:
        self.items = list(items)
        self.follow = follow
        self.index = 0
        self._done = False
        if resume is not None:
            if resume.get("kind") != "list":
                raise PositionMismatch("not a list position")
            self.index = int(resume["index"])

    def extend(self, items: Iterable[bytes]) -> None:
        self.items.extend(items)

    def next_batch(self, max_items: int) -> list[Raw]:
        start = self.index
        stop = min(len(self.items), start + max_items)
        self.index = stop
        if start == stop and not self.follow:
            self._done = True
        return [Raw(self.items[i], i) for i in range(start, stop)]

    def snapshot(self) -> dict[str, Any]:
        return {"kind": "list", "index": self.index}

    @property
    def exhausted(self) -> bool:
        return self._done
