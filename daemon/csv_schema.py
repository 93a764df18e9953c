"""A CSV stream's columns and cells: the header in force, how it maps onto the model's features,
and how a line's cells and numbers read.

A header row inside the stream (a rotated-in file, concatenated CSVs) maps the columns anew
by name; one of other features than the model's is refused: ``SchemaChanged``, or its rows
are dead letters until a header that fits. ``streamlearn.records.CsvDecoder`` decodes rows
against the ``CsvSchema`` in force.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence

from streamlearn.sources.base import Raw, SourceError

log = logging.getLogger(__name__)

#: What a header row of other features does (``--on-schema-change``).
SCHEMA_POLICIES = ("stop", "dead-letter")


class SchemaChanged(SourceError):
    """A CSV header row names other features than the model's: the stream cannot go on as is.

    Raised under ``on_schema_change="stop"``; the CLI prints the message on one line and
    exits 1.
    """


def split_cells(text: str) -> list[str]:
    """The cells of a CSV line (without its line end).

    >>> split_cells('1,"2,5",y')
    ['1', '2,5', 'y']
    """
    # Plain numeric rows have no quotes: str.split is several times faster than csv.
    return next(csv.reader([text])) if '"' in text else text.split(",")


def plain_float(text: str) -> float:
    """``float()`` of a number as the compiled CSV parser reads it: ASCII, no underscores.

    ``float()`` also takes digit-group underscores and any Unicode digit or space; a cell
    holding them is ``non_numeric`` on every path.

    >>> plain_float(" 2.5")
    2.5
    >>> plain_float("1_000")
    Traceback (most recent call last):
    ValueError: not a plain number: '1_000'
    """
    if "_" in text or not text.isascii():
        raise ValueError(f"not a plain number: {text!r}")
    return float(text)


def parse_csv_header(line: bytes) -> list[str]:
    """Column names of a CSV header line.

    >>> parse_csv_header(b'a,"b c",y\\r\\n')
    ['a', 'b c', 'y']
    """
    text = line.decode("utf-8-sig").rstrip("\r\n")
    return [name.strip() for name in next(csv.reader([text]))]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _position(raw: Raw) -> str:
    """Where ``raw`` is, for a message: ``offset 120`` (a file), or topic, partition, offset."""
    return ", ".join(f"{key} {value}" for key, value in raw.where().items())


class CsvSchema:
    """The model's features, the columns in force, and where each feature is among them.

    A header row is a row whose cells are distinct names, none a number, one of them a
    feature of the model (the target, in a CSV without features); a row of names that
    shares none is a bad row. Parameters as ``CsvDecoder``'s.

    Examples
    --------
    >>> schema = CsvSchema(["a", "b", "y"], "y", None, None, "stop")
    >>> schema.plain, schema.feature_index
    (True, [('a', 0), ('b', 1)])
    >>> schema.take(["b", "a", "y"], Raw(b"b,a,y\\n", offset=40))
    >>> schema.plain, schema.feature_index
    (False, [('a', 1), ('b', 0)])
    """

    def __init__(
        self,
        header: list[str],
        target: str,
        features: Sequence[str] | None,
        id_column: str | None,
        on_schema_change: str,
        key_column: str | None = None,
    ) -> None:
        if "" in header:  # a trailing comma, as some exporters write: every row would misfit
            raise ValueError(
                f"the CSV header has an empty column name (column {header.index('') + 1} of "
                f"{','.join(header)}); name every column"
            )
        if len(set(header)) != len(header):
            dupes = sorted({h for h in header if header.count(h) > 1})
            raise ValueError(f"the CSV header repeats column names: {', '.join(dupes)}")
        if target not in header:
            raise ValueError(
                f"target column {target!r} is not in the CSV header ({', '.join(header)}); "
                "choose it with --target"
            )
        if id_column is not None and id_column not in header:
            raise ValueError(f"id column {id_column!r} is not in the CSV header")
        if key_column is not None and key_column not in header:
            raise ValueError(f"key column {key_column!r} (--key-by) is not in the CSV header")
        if on_schema_change not in SCHEMA_POLICIES:
            raise ValueError(f"on_schema_change is stop or dead-letter, not {on_schema_change!r}")
        #: Whether the features were chosen (``--features``): a new header must hold them all.
        self.chosen = features is not None
        #: Columns that are never features: the target, the id, the key (``--key-by``).
        self._not_features = (target, id_column, key_column)
        if features is None:
            features = [h for h in header if h not in self._not_features]
        missing = [f for f in features if f not in header]
        if missing:
            raise ValueError(f"feature columns not in the CSV header: {', '.join(missing)}")
        if target in features:
            raise ValueError(f"the target {target!r} cannot also be a feature")
        if key_column is not None and key_column in features:
            raise ValueError(f"the key column {key_column!r} (--key-by) cannot be a feature")
        self.target = target
        #: The model's features, in the order its records list them (whatever a header's order).
        self.features = list(features)
        self.id_column = id_column
        self.key_column = key_column
        self.on_schema_change = on_schema_change
        self._known = frozenset(self.features or [target])
        #: The columns in force: the last header row (a refused one included).
        self.header = header
        #: True while a refused header is in force: its rows are not the model's.
        self.refused = False
        self.plain = False
        self.n_fields = 0
        self.target_index = self.id_index = self.key_index = -1
        self.feature_index: list[tuple[str, int]] = []
        self._use(header)

    def _use(self, columns: list[str]) -> None:
        """Map the model's features onto ``columns`` by name (a header of the same features)."""
        self.header = columns
        self.refused = False
        self.n_fields = len(columns)
        self.target_index = columns.index(self.target)
        self.id_index = columns.index(self.id_column) if self.id_column is not None else -1
        key = self.key_column
        self.key_index = columns.index(key) if key is not None else -1
        self.feature_index = [(name, columns.index(name)) for name in self.features]
        self.plain = self.id_index < 0 and columns == [*self.features, self.target]

    def _refuse(self, columns: list[str]) -> None:
        self.header = columns
        self.refused = True
        self.plain = False

    def header_names(self, fields: list[str]) -> list[str] | None:
        """The column names when ``fields`` is a header row, else None (a record, a bad row)."""
        names = [field.strip() for field in fields]
        names[0] = names[0].lstrip("\ufeff")  # a byte-order mark starting a file
        if "" in names or len(set(names)) < len(names) or self._known.isdisjoint(names):
            return None
        if any(_is_number(name) for name in names):
            return None
        return names

    def changes(self, raw: Raw) -> bool:
        """Whether ``raw`` is a header row of other columns than those in force (only asks)."""
        if raw.truncated:
            return False
        try:
            text = raw.value.decode("utf-8")
        except UnicodeDecodeError:
            return False
        names = self.header_names(split_cells(text.rstrip("\r\n")))
        return names is not None and names != self.header

    def misfit(self, columns: list[str]) -> str | None:
        """Why the model cannot learn rows of ``columns``; None when it can (by name)."""
        if self.target not in columns:
            return f"it has no target column {self.target!r}"
        if self.id_column is not None and self.id_column not in columns:
            return f"it has no id column {self.id_column!r}"
        if self.key_column is not None and self.key_column not in columns:
            return f"it has no key column {self.key_column!r}"
        if self.chosen:
            missing = [name for name in self.features if name not in columns]
            return f"it lacks the features {','.join(missing)} (--features)" if missing else None
        theirs = [name for name in columns if name not in self._not_features]
        if set(theirs) != set(self.features):
            ours = ",".join(self.features)
            return f"its features ({','.join(theirs)}) are not the model's ({ours})"
        return None

    def take(self, columns: list[str], raw: Raw) -> str | None:
        """A header row ``columns`` at ``raw``: None once in force (mapped by name, or the same).

        A header of other features raises ``SchemaChanged`` (``stop``), or is put in force
        refused (``dead-letter``): the reason is returned, for its dead letter.
        """
        if columns == self.header:
            return None
        old, new, where = ",".join(self.header), ",".join(columns), _position(raw)
        problem = self.misfit(columns)
        if problem is None:
            self._use(columns)
            log.info("CSV header at %s: %s (was %s); columns mapped by name", where, new, old)
            return None
        message = f"the CSV header changed at {where} from {old} to {new}: {problem}"
        if self.on_schema_change == "stop":
            raise SchemaChanged(
                f"{message}; to send its rows to the dead letters instead, "
                "run with --on-schema-change dead-letter"
            )
        self._refuse(columns)
        log.warning(
            "%s; it and its rows go to the dead letters (schema_changed) "
            "until a header of the model's features",
            message,
        )
        return problem

    def refused_row(self, raw: Raw) -> str:
        """The dead letter's detail of a row under a refused header (``stop``: raises)."""
        columns = ",".join(self.header)
        if self.on_schema_change == "stop":  # the checkpoint was taken in dead-letter mode
            raise SchemaChanged(
                f"the position at {_position(raw)} is under the CSV header {columns}, "
                f"which names other features than the model's ({','.join(self.features)}); "
                "run with --on-schema-change dead-letter to send its rows to the dead letters"
            )
        return f"a row under the refused CSV header {columns}"

    def saved(self) -> dict[str, list[str]]:
        """The model's features and the columns in force, for the checkpoint."""
        return {"features": list(self.features), "columns": list(self.header)}

    def restore(self, saved: Mapping[str, Sequence[str]]) -> None:
        """Take up ``saved()``: its features (and their order) are the model's."""
        self.features = list(saved["features"])
        self._known = frozenset(self.features or [self.target])
        columns = list(saved["columns"])
        if self.misfit(columns) is None:
            self._use(columns)
        else:
            self._refuse(columns)
