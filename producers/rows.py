"""The rows ``produce`` sends: a CSV or JSON Lines file read into flat dicts, with the rows that
cannot be sent (a wrong cell count, a line that is not a JSON object, no time or id where one is
needed) set apart as :class:`SkippedRow` with where and why."""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "ProduceError",
    "RowRules",
    "SkippedRow",
    "count_rows",
    "parse_cell",
    "parse_timestamp",
    "read_rows",
    "rows_to_send",
]

_INT_RE = re.compile(r"^[+-]?\d+$")
_JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
_CSV_SUFFIXES = (".csv", ".tsv")


class ProduceError(RuntimeError):
    """The replay could not go on: unreadable file content, or Kafka refused the records."""


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A row that cannot be sent: ``where`` is ``file:line``, ``reason`` says why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


#: A row to send with its ``file:line``, or a row that cannot be sent.
Line = tuple[str, dict[str, Any]] | SkippedRow


def parse_cell(text: str) -> int | float | str | None:
    """A CSV cell as JSON wants it: numbers as numbers, empty as None, the rest as text.

    Non-finite numbers (``nan``, ``inf``) stay text: JSON has no way to write them.

    >>> [parse_cell(cell) for cell in ["42", "-3.5", "1e3", "", "  ", "abc", "nan", "007"]]
    [42, -3.5, 1000.0, None, None, 'abc', 'nan', 7]
    """
    stripped = text.strip()
    if not stripped:
        return None
    if _INT_RE.match(stripped):
        return int(stripped)
    try:
        number = float(stripped)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def parse_timestamp(value: Any) -> float:
    """Seconds since the epoch from numeric seconds or an ISO 8601 string (naive means UTC).

    >>> parse_timestamp(12.5), parse_timestamp("1700000000")
    (12.5, 1700000000.0)
    >>> parse_timestamp("2024-01-01T00:00:10Z") - parse_timestamp("2024-01-01T00:00:00")
    10.0
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a timestamp")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(
                    f"{value!r} is neither numeric seconds nor an ISO 8601 time"
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite timestamp")
    return seconds


def _is_json_lines(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in _JSON_SUFFIXES:
        return True
    if suffix in _CSV_SUFFIXES:
        return False
    with open(path, "rb") as file:  # no telling suffix: a JSON Lines file starts with "{"
        for line in file:
            if line.strip():
                return line.lstrip().startswith(b"{")
    return False


def read_lines(path: Path, text_columns: Collection[str] = ()) -> Iterator[Line]:
    """The file's rows with their ``file:line``, and the rows that are not rows as ``SkippedRow``.

    CSV (with a header) or JSON Lines, told by suffix or content. CSV cells go through
    :func:`parse_cell` (those of ``text_columns`` stay text as written, such as a classifier's
    labels ``03`` or ``1.50``) and empty cells are left out; JSON objects come as they are.
    """
    if _is_json_lines(path):
        yield from _read_json_lines(path)
    else:
        yield from _read_csv(path, frozenset(text_columns))


def read_rows(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The file's rows as flat dicts: CSV (with a header) or JSON Lines, told by suffix or content.

    CSV cells go through :func:`parse_cell` and empty cells are left out; JSON objects come as
    they are. Raises :class:`ProduceError` naming the line for content that is not a row.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "rows.csv"
    >>> _ = path.write_text("a,b,y\\n1,,2.5\\n3,x,\\n")
    >>> list(read_rows(path))
    [{'a': 1, 'y': 2.5}, {'a': 3, 'b': 'x'}]
    """
    for line in read_lines(Path(path)):
        if isinstance(line, SkippedRow):
            raise ProduceError(str(line))
        yield line[1]


def _read_json_lines(path: Path) -> Iterator[Line]:
    with open(path, "rb") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield SkippedRow(where, f"not valid JSON ({exc})")
                continue
            if not isinstance(row, dict):
                yield SkippedRow(where, "expected a JSON object per line")
                continue
            yield where, row


def _read_csv(path: Path, text_columns: frozenset[str] = frozenset()) -> Iterator[Line]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        header = [name.strip() for name in header]
        if len(set(header)) != len(header) or "" in header:
            raise ProduceError(f"{path}: the CSV header has empty or repeated column names")
        for row_number, cells in enumerate(reader, start=2):
            if not cells:
                continue
            where = f"{path}:{row_number}"
            if len(cells) != len(header):
                yield SkippedRow(where, f"{len(cells)} cells, but the header has {len(header)}")
                continue
            row = {}
            for name, cell in zip(header, cells, strict=True):
                value = (
                    parse_cell(cell) if name not in text_columns else cell if cell.strip() else None
                )
                if value is not None:
                    row[name] = value
            yield where, row


@dataclass(frozen=True, slots=True)
class RowRules:
    """What a row needs beyond being a row: a time when paced by a column, an id for late labels;
    and the CSV columns sent as text as written (``text_columns``).

    >>> RowRules(time_column="t").problem({"t": "noon"})
    "column 't': 'noon' is neither numeric seconds nor an ISO 8601 time"
    >>> RowRules(id_column="order").problem({"a": 1}), RowRules().problem({})
    ("no value in id column 'order'", None)
    """

    time_column: str | None = None
    id_column: str | None = None
    text_columns: tuple[str, ...] = ()

    def problem(self, row: dict[str, Any]) -> str | None:
        """Why ``row`` cannot be sent, or None."""
        if self.time_column is not None:
            if self.time_column not in row:
                return f"no value in time column {self.time_column!r}"
            try:
                parse_timestamp(row[self.time_column])
            except ValueError as exc:
                return f"column {self.time_column!r}: {exc}"
        if self.id_column is not None and row.get(self.id_column) is None:
            return f"no value in id column {self.id_column!r}"
        return None


def rows_to_send(path: Path, rules: RowRules) -> Iterator[Line]:
    """:func:`read_lines`, with the rows that break ``rules`` turned into ``SkippedRow``."""
    for line in read_lines(path, rules.text_columns):
        if not isinstance(line, SkippedRow):
            problem = rules.problem(line[1])
            if problem is not None:
                line = SkippedRow(line[0], problem)
        yield line


def count_rows(path: Path, rules: RowRules) -> int:
    """How many rows of the file can be sent (for a progress display)."""
    return sum(1 for line in rows_to_send(path, rules) if not isinstance(line, SkippedRow))
