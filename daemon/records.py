"""Records and the CSV decoder: raw bytes in, a validated ``Record`` (or a reason to reject) out.

The JSON decoder is :mod:`streamlearn.json_decoder`. Bad input is data, not a crash:
every decoder returns a ``Rejected`` with one of the fixed ``REJECT_REASONS`` instead of
raising, so the run loop can send it to the dead-letter sink once and move the position
on. A record that reaches the model has only finite float features and a finite (or
absent) target, a regressor's within ±``TARGET_LIMIT``. The one
exception: a CSV header row of other features than the model's stops the stream
(``streamlearn.csv_schema.SchemaChanged``) unless its rows are to be dead-lettered.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamlearn.csv_schema import CsvSchema, plain_float, split_cells
from streamlearn.metrics import DIVERGED
from streamlearn.sources.base import Raw

if TYPE_CHECKING:
    from streamlearn.classify.space import ClassSpace
    from streamlearn.keys.fields import KeyField

#: A regressor's target must lie strictly within ±TARGET_LIMIT (else ``out_of_range``): the
#: prediction scored against it lies within ±``DIVERGED``, so the error is below
#: 2e150 and its square, below 4e300, stays finite in every metric.
TARGET_LIMIT = DIVERGED

#: The closed set of rejection reasons (bounded label values for metrics).
REJECT_REASONS = (
    "field_count",
    "non_numeric",
    "non_finite",
    "out_of_range",  # a regressor's target beyond ±TARGET_LIMIT: its squared error overflows
    "undecodable",
    "too_long",
    "bad_json",
    "bad_shape",
    "missing_feature",
    "empty",
    "partial_line",
    "unjoined_label",
    "schema_changed",
    "too_many_features",
    # a classifier's label (streamlearn.classify.space.ClassSpace.encode)
    "unknown_class",
    "third_class",
    "too_many_classes",
    # a record's key (--key-by: streamlearn.keys.fields, streamlearn.keys.store)
    "missing_key",
    "bad_key",
    "key_too_long",
    "too_many_keys",
)


@dataclass(slots=True)
class Record:
    """A decoded record: finite float features, a target (None when unlabeled), an id, and
    the key of its model in a keyed run (``--key-by``; None otherwise)."""

    x: dict[str, float]
    y: float | None
    id: str | None
    raw: Raw
    key: str | None = None


@dataclass(slots=True)
class Label:
    """A late label: a target for features that arrived earlier under the same id."""

    id: str
    y: float
    raw: Raw


@dataclass(slots=True)
class Rejected:
    """A raw item that cannot become a record, with the reason."""

    reason: str
    detail: str
    raw: Raw

    def dead_letter(self, source: str) -> dict[str, Any]:
        """The dead-letter entry: reason, raw text (base64 when not UTF-8), position."""
        raw = self.raw
        try:
            text, encoding = raw.value.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(raw.value).decode("ascii"), "base64"
        entry: dict[str, Any] = {
            "reason": self.reason,
            "detail": self.detail,
            "raw": text,
            "raw_encoding": encoding,
            "source": source,
            "position": raw.where(),
        }
        if raw.truncated:
            entry["truncated"] = True
        return entry


Decoded = Record | Label | Rejected | None


def check_target(y: float, name: str, raw: Raw) -> Rejected | None:
    """None for a regressor's target the metrics can square (within ±``TARGET_LIMIT``),
    else the ``non_finite`` or ``out_of_range`` rejection naming ``name``.

    >>> raw = Raw(b"", offset=0)
    >>> check_target(-9.9e149, "target 'y'", raw) is None
    True
    >>> check_target(1e300, "target 'y'", raw).detail
    "target 'y' is 1e+300: beyond ±1e+150, its squared error would overflow"
    >>> check_target(float("inf"), "target 'y'", raw).reason
    'non_finite'
    """
    if -TARGET_LIMIT < y < TARGET_LIMIT:
        return None
    if not math.isfinite(y):
        return Rejected("non_finite", f"{name} is {y}", raw)
    return Rejected("out_of_range", out_of_range(name, y), raw)


def out_of_range(name: str, y: float) -> str:
    """What is wrong with a target beyond ±``TARGET_LIMIT``, in one line."""
    return f"{name} is {y!r}: beyond ±{TARGET_LIMIT!r}, its squared error would overflow"


def class_code(classes: ClassSpace, text: str, raw: Raw) -> float | Rejected | None:
    """A classifier's target: the class code of ``text``, a ``Rejected``, or None when the
    text is empty or ``null`` (an unlabeled record, never an error).

    >>> from streamlearn.classify.space import ClassSpace
    >>> space, raw = ClassSpace(binary=True), Raw(b"", offset=0)
    >>> class_code(space, " Yes\\n", raw), class_code(space, "null", raw)
    (1.0, None)
    >>> class_code(space, "maybe", raw).reason
    'third_class'
    """
    label = text.strip()
    if not label or (len(label) == 4 and label.lower() == "null"):
        return None
    code = classes.encode(text)
    if isinstance(code, float):
        return code
    return Rejected(code.reason, code.detail, raw)


class CsvDecoder:
    """Decodes CSV lines against a header, mapping the columns to the model's features by name.

    A header row inside the stream (a rotated-in file, concatenated CSVs) maps the columns
    anew by name (``streamlearn.csv_schema``). A header of other features than the model's
    stops the stream (``SchemaChanged``) or, with ``on_schema_change="dead-letter"``, it and
    its rows are dead letters (``schema_changed``) until a header of the model's features.

    Parameters
    ----------
    header
        The column names, in file order.
    target
        The target column; an empty cell there makes the record unlabeled.
    features
        The feature columns to use (default: every column but the target and the id).
    id_column
        An optional column holding the record id.
    on_schema_change
        ``stop`` or ``dead-letter``: what a header row of other features does.
    classes
        A classifier's classes: the target is label text, and ``Record.y`` its class code
        (``streamlearn.classify.space.ClassSpace``). None (a regressor): a number.
    keys
        Where a record's key is (``--key-by``: a column, never a feature, or the message key).

    Examples
    --------
    >>> decoder = CsvDecoder(["a", "b", "y"])
    >>> decoder.decode(Raw(b"1,2.5,3\\n", offset=6)).x
    {'a': 1.0, 'b': 2.5}
    >>> decoder.decode(Raw(b"1,2.5,\\n", offset=14)).y is None
    True
    >>> decoder.decode(Raw(b"1,oops,3\\n", offset=21)).reason
    'non_numeric'
    >>> decoder.decode(Raw(b"1,1e999,3\\n", offset=30)).reason
    'non_finite'

    A header row of the same features in another order maps them by name:

    >>> decoder.decode(Raw(b"b,a,y\\n", offset=41)) is None
    True
    >>> decoder.decode(Raw(b"2.5,1,3\\n", offset=47)).x
    {'a': 1.0, 'b': 2.5}

    A classifier's target is a label; the record holds its class code:

    >>> from streamlearn.classify.space import ClassSpace
    >>> labels = CsvDecoder(["a", "b", "y"], classes=ClassSpace(binary=False))
    >>> rows = [Raw(b"1,2,cat\\n", offset=0), Raw(b"3,4,dog\\n", offset=8)]
    >>> [record.y for record in labels.decode_batch(rows)]
    [0.0, 1.0]
    """

    def __init__(
        self,
        header: Sequence[str],
        target: str = "y",
        features: Sequence[str] | None = None,
        id_column: str | None = None,
        on_schema_change: str = "stop",
        classes: ClassSpace | None = None,
        keys: KeyField | None = None,
    ) -> None:
        column = keys.field if keys is not None else None
        self._schema = CsvSchema(
            list(header), target, features, id_column, on_schema_change, key_column=column
        )
        self.target = target
        self.id_column = id_column
        self.classes = classes
        self.keys = keys

    @property
    def features(self) -> list[str]:
        """The model's features, in the order its records list them."""
        return self._schema.features

    @property
    def header(self) -> list[str]:
        """The columns in force: the last header row."""
        return self._schema.header

    @property
    def plain(self) -> bool:
        """True for the plain layout (every feature in order, then the target; no id column).

        That layout is what ``streamlearn.fast.block`` parses a block at a time. A header
        row may change it (``changes_schema``).
        """
        return self._schema.plain

    @property
    def plain_keyed(self) -> bool:
        """True when the columns in force, the key column left out, are the plain layout:
        what the keyed block paths (``streamlearn.loop.keyblocks``) parse once they have cut
        the key column out of a block."""
        schema, keys = self._schema, self.keys
        if keys is None or keys.field is None or schema.refused or schema.id_index >= 0:
            return False
        columns = [name for name in schema.header if name != keys.field]
        return columns == [*schema.features, schema.target]

    def changes_schema(self, raw: Raw) -> bool:
        """Whether ``raw`` is a header row of other columns than those in force.

        ``decode`` would then map them anew (or refuse them); this only asks. The compiled
        block parser stops before such a row: the rows after it are not the layout it read.
        """
        return self._schema.changes(raw)

    def schema(self) -> dict[str, list[str]]:
        """The model's features and the columns in force, for the checkpoint."""
        return self._schema.saved()

    def restore_schema(self, schema: Mapping[str, Sequence[str]] | None) -> None:
        """Take up a checkpoint's ``schema()``: the columns in force at its position.

        The checkpoint's features (and their order) are the model's, whatever header the
        file at the path starts with now.
        """
        if schema is not None:
            self._schema.restore(schema)

    def _header_row(self, names: list[str], raw: Raw) -> Decoded:
        """A header row: None once its columns are in force, a dead letter when refused."""
        problem = self._schema.take(names, raw)
        return None if problem is None else Rejected("schema_changed", problem, raw)

    def decode_batch(self, raws: Sequence[Raw]) -> list[Decoded]:
        """Decode many lines; the plain layout (features then target) skips text decoding.

        ``float`` parses ASCII bytes directly, so a well-formed numeric row never
        becomes a ``str``; any row the fast path doubts (``float`` of bytes takes digit-group
        underscores, which ``plain_float`` refuses) is decoded by ``decode``. After a
        header row that changes the layout, the rest goes through ``decode`` too.
        """
        schema = self._schema
        if not schema.plain or self.keys is not None:
            return [self.decode(raw) for raw in raws]
        if self.classes is not None:
            return self._decode_labeled_batch(raws)
        out: list[Decoded] = []
        append = out.append
        features = schema.features
        n_fields = schema.n_fields
        isfinite = math.isfinite
        limit = TARGET_LIMIT
        decode = self.decode
        rest = iter(raws)
        for raw in rest:
            value = raw.value
            fields = value.split(b",")
            if len(fields) == n_fields and not raw.truncated and b"_" not in value:
                try:
                    values = list(map(float, fields))
                except ValueError:
                    pass
                else:
                    # A target beyond the limit takes ``decode``, which rejects it.
                    if isfinite(sum(values)) and -limit < values[-1] < limit:
                        y = values.pop()
                        append(Record(dict(zip(features, values)), y, None, raw))  # noqa: B905
                        continue
            append(decode(raw))
            if not schema.plain:  # a header row of other columns: no fast path for the rest
                out.extend(map(decode, rest))
        return out

    def _decode_labeled_batch(self, raws: Sequence[Raw]) -> list[Decoded]:
        """``decode_batch`` for a classifier: the features as there, the label as text.

        The last cell is the label; the cells before it must be plain numbers (no
        underscore, no quote), else the row is decoded by ``decode``.
        """
        schema = self._schema
        classes = self.classes
        assert classes is not None
        out: list[Decoded] = []
        append = out.append
        features = schema.features
        n_features = schema.n_fields - 1
        isfinite = math.isfinite
        decode = self.decode
        rest = iter(raws)
        for raw in rest:
            value = raw.value
            head, comma, tail = value.rpartition(b",")
            if comma and not raw.truncated and b"_" not in head and b'"' not in value:
                cells = head.split(b",")
                if len(cells) == n_features:
                    try:
                        values = list(map(float, cells))
                        label = tail.decode("utf-8")
                    except ValueError:  # UnicodeDecodeError is one
                        pass
                    else:
                        if isfinite(sum(values)):
                            y = class_code(classes, label, raw)
                            if isinstance(y, Rejected):
                                append(y)
                            else:
                                append(Record(dict(zip(features, values)), y, None, raw))  # noqa: B905
                            continue
            append(decode(raw))
            if not schema.plain:  # a header row of other columns: no fast path for the rest
                out.extend(map(decode, rest))
        return out

    def _target(
        self, cell: str, raw: Raw, number: Callable[[str], float]
    ) -> float | Rejected | None:
        """A target cell (not empty): its number (a regressor) or class code (a classifier)."""
        if self.classes is not None:
            return class_code(self.classes, cell, raw)
        try:
            y = number(cell)  # unstripped: a non-ASCII space is not ASCII
        except ValueError:
            shown = cell.strip()[:40]
            return Rejected("non_numeric", f"target {self.target!r} is {shown!r}", raw)
        return check_target(y, f"target {self.target!r}", raw) or y

    def _label_row(
        self, fields: list[str], raw: Raw, number: Callable[[str], float] = plain_float
    ) -> Label | Rejected | None:
        """A row with only an id and a target is a late label; None if it is not one."""
        schema = self._schema
        if schema.id_index < 0 or any(fields[i].strip() for _, i in schema.feature_index):
            return None
        record_id, cell = fields[schema.id_index].strip(), fields[schema.target_index].strip()
        if not record_id or not cell:
            return None
        y = self._target(fields[schema.target_index], raw, number)
        if y is None:  # a classifier's null label: no label
            return None
        return y if isinstance(y, Rejected) else Label(record_id, y, raw)

    def decode(self, raw: Raw) -> Decoded:
        """One line to a Record, a Label, a Rejected, or None for a header/blank line.

        Raises ``SchemaChanged`` at a header row of other features than the model's when
        ``on_schema_change`` is ``stop``.
        """
        item = self._decode_line(raw)
        keys = self.keys
        if keys is None or type(item) is not Record:
            return item
        index = self._schema.key_index
        cell = split_cells(raw.value.decode("utf-8").rstrip("\r\n"))[index] if index >= 0 else None
        return keys.keyed(item, cell)

    def _decode_line(self, raw: Raw) -> Decoded:
        """``decode`` without the key."""
        if raw.truncated:
            return Rejected("too_long", "line longer than the limit", raw)
        try:
            text = raw.value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejected("undecodable", str(exc), raw)
        text = text.rstrip("\r\n")
        if not text.strip():
            return None
        fields = split_cells(text)
        schema = self._schema
        if schema.refused:  # a header row, else a row of the refused header's
            names = schema.header_names(fields)
            if names is not None:
                return self._header_row(names, raw)
            return Rejected("schema_changed", schema.refused_row(raw), raw)
        if len(fields) != schema.n_fields:
            names = schema.header_names(fields)
            if names is not None:  # the header again, or a new one (a rotated file)
                return self._header_row(names, raw)
            return Rejected(
                "field_count", f"expected {schema.n_fields} fields, got {len(fields)}", raw
            )
        # Numbers as the compiled CSV parser reads them: float() itself for an ASCII line
        # without underscores (the common case, one check a line), else cell by cell.
        number = float if text.isascii() and "_" not in text else plain_float
        if schema.plain and self.classes is not None:
            record = self._plain_labeled(fields, raw, number)
            if record is not None:
                return record
        elif schema.plain:
            # Fast path for the common layout (features, then the target, no id):
            # one C-level map(float) and one finiteness check by summing; any
            # doubt (text, NaN, inf, overflow, empty target, a target out of range)
            # takes the slow path.
            try:
                values = list(map(number, fields))
            except ValueError:
                pass
            else:
                if math.isfinite(sum(values)) and -TARGET_LIMIT < values[-1] < TARGET_LIMIT:
                    y = values.pop()
                    return Record(dict(zip(schema.features, values, strict=True)), y, None, raw)
        x: dict[str, float] = {}
        for name, index in schema.feature_index:
            cell = fields[index]
            try:
                value = number(cell)
            except ValueError:
                names = schema.header_names(fields)
                if names is not None:
                    return self._header_row(names, raw)
                if not cell.strip():
                    return self._label_row(fields, raw, number) or Rejected(
                        "missing_feature", f"feature {name!r} is empty", raw
                    )
                return Rejected("non_numeric", f"feature {name!r} is {cell[:40]!r}", raw)
            if value - value != 0.0:  # NaN or +-inf (cheaper than math.isfinite here)
                return Rejected("non_finite", f"feature {name!r} is {cell[:40]!r}", raw)
            x[name] = value
        if not x:
            names = schema.header_names(fields)
            if names is not None:  # the header of a CSV without features (the target, an id)
                return self._header_row(names, raw)
        record_id = fields[schema.id_index] if schema.id_index >= 0 else None
        cell = fields[schema.target_index].strip()
        if not cell or cell.lower() == "null":
            return Record(x, None, record_id, raw)
        if not x and record_id is not None:
            return self._label_row(fields, raw, number)
        target = self._target(fields[schema.target_index], raw, number)
        return target if isinstance(target, Rejected) else Record(x, target, record_id, raw)

    def _plain_labeled(
        self, fields: list[str], raw: Raw, number: Callable[[str], float]
    ) -> Record | Rejected | None:
        """A classifier's row of the plain layout when its features are all finite numbers
        (the record, or its label's rejection); None for ``decode``'s slow path."""
        assert self.classes is not None
        try:
            values = list(map(number, fields[:-1]))
        except ValueError:
            return None
        if not math.isfinite(sum(values)):
            return None
        y = class_code(self.classes, fields[-1], raw)
        if isinstance(y, Rejected):
            return y
        return Record(dict(zip(self._schema.features, values, strict=True)), y, None, raw)
