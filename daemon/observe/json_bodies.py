"""The JSON of the HTTP face: request bodies read and checked, answers made JSON-safe.

A ``POST /predict`` body becomes :class:`Query` records and a ``POST /learn`` body
:class:`Example` records, or a :class:`BadRequest` whose message is sent back to the client;
an answer's NaN and infinities become ``null`` (JSON has no such numbers).

A body is one record or a JSON array of up to :data:`MAX_RECORDS`. A record is
``{"x": {...features}}`` or a flat object of features; ``"id"`` (a string or an integer) is
the record's id, never a feature; in ``/learn`` the target (``--target``) sits beside them,
and ``{"id": ..., "y": ...}`` alone is a late label for features predicted earlier. A
classifier's target is a label: its text, coded by the run's class space under the loop's lock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TypeVar

from streamlearn.records import TARGET_LIMIT, out_of_range

__all__ = [
    "MAX_RECORDS",
    "BadRequest",
    "Example",
    "Query",
    "finite_or_null",
    "parse_examples",
    "parse_features",
    "parse_queries",
]

#: The most records one body may hold.
MAX_RECORDS = 1000

T = TypeVar("T")


class BadRequest(ValueError):
    """A client error in a request; the message is sent back as the JSON ``error``."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Query:
    """One record of a ``POST /predict`` body."""

    features: dict[str, float]
    id: str | None = None
    #: The model's key in a keyed daemon (``--key-by``): ``{"key": K, "x": {...}}``.
    key: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Example:
    """One record of a ``POST /learn`` body: features and target, or (``features`` None) a
    late label for the features predicted earlier under ``id``. ``y`` is a number, or a
    classifier's label text (``parse_examples(..., labels=True)``)."""

    features: dict[str, float] | None
    y: float | str
    id: str | None = None
    #: The model's key in a keyed daemon (``--key-by``; a late label needs none).
    key: str | None = field(default=None, repr=False)


def _reject_constant(name: str) -> float:
    # json.loads accepts the non-standard NaN/Infinity literals; a model must never see them.
    raise BadRequest(f"body contains {name}: feature values must be finite numbers")


def finite_or_null(document: object) -> object:
    """``document`` with NaN and infinities as ``None``: JSON has no such numbers.

    >>> finite_or_null({"mae": float("nan"), "n": [1, float("inf")]})
    {'mae': None, 'n': [1, None]}
    """
    if isinstance(document, float):
        return document if math.isfinite(document) else None
    if isinstance(document, Mapping):
        return {str(k): finite_or_null(v) for k, v in document.items()}
    if isinstance(document, list | tuple):
        return [finite_or_null(v) for v in document]
    return document


def _load(body: bytes) -> object:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except BadRequest:
        raise
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None


def _records(document: object, what: str) -> tuple[list[dict[str, object]], bool]:
    """The records of a body, and whether it was an array."""
    if isinstance(document, dict):
        return [document], False
    if not isinstance(document, list):
        raise BadRequest(f"body must be a JSON object ({what}) or an array of them")
    if not document:
        raise BadRequest("no records in the array")
    if len(document) > MAX_RECORDS:
        raise BadRequest(f"at most {MAX_RECORDS} records in one body, got {len(document)}")
    for index, record in enumerate(document):
        if not isinstance(record, dict):
            raise BadRequest(f"record {index}: not a JSON object")
    return document, True


def _number(value: object) -> float | None:
    """A finite float, or None (JSON booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer literal beyond float range
        return None
    return number if math.isfinite(number) else None


def _record_id(record: dict[str, object]) -> str | None:
    value = record.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadRequest("id must be a string or an integer")
    return str(value)


def _features(
    values: Mapping[str, object], expected: Collection[str], skip: Collection[str]
) -> dict[str, float]:
    features: dict[str, float] = {}
    bad: list[str] = []
    for name, value in values.items():
        if name in skip:
            continue
        number = _number(value)
        if number is None:
            bad.append(name)
        else:
            features[name] = number
    if bad:
        raise BadRequest(f"features must be finite numbers: {', '.join(sorted(bad))}")
    missing = [name for name in expected if name not in features]
    if missing:
        raise BadRequest(f"missing features: {', '.join(sorted(missing))}")
    if not features:
        raise BadRequest("no features given")
    return features


def _unwrapped(
    record: dict[str, object], beside: Collection[str]
) -> tuple[Mapping[str, object], bool]:
    """The features' object of a record (``{"x": {...}}`` or flat), and whether it was wrapped."""
    inner = record.get("x")
    if isinstance(inner, dict) and all(key == "x" or key in beside for key in record):
        return inner, True
    return record, False


def _query(record: dict[str, object], expected: Collection[str], keyed: bool = False) -> Query:
    record_id = _record_id(record)
    if not keyed:
        values, _ = _unwrapped(record, ("id",))
        return Query(_features(values, expected, skip=("id",)), record_id)
    from streamlearn.keys.fields import key_text

    key = key_text(record.get("key"))
    if not isinstance(key, str):
        raise BadRequest(f'"key": {key[1]} (a keyed daemon predicts {{"key": K, "x": {{...}}}})')
    values, _ = _unwrapped(record, ("id", "key"))
    return Query(_features(values, expected, skip=("id", "key")), record_id, key)


def _label(value: object, target: str) -> str:
    """A classifier's label as the JSON decoder reads it: a string as it is, a number or a
    bool as its JSON text; an empty one is refused (``/learn`` learns labeled records)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadRequest(f"target {target!r} is {value}, not a class label")
        return repr(value)
    if isinstance(value, str) and value.strip() and value.strip().lower() != "null":
        return value
    if value is None or isinstance(value, str):
        raise BadRequest(f"target {target!r} is empty: POST /learn takes labeled records")
    kind = "an object" if isinstance(value, dict) else "a list"
    raise BadRequest(f"target {target!r} is {kind}, not a class label")


def _example(
    record: dict[str, object],
    target: str,
    expected: Collection[str],
    labels: bool = False,
    keyed: bool = False,
) -> Example:
    given = None
    if keyed:  # the key is never a feature
        record = dict(record)
        given = record.pop("key", None)
    record_id = _record_id(record)
    if target not in record:
        raise BadRequest(f"no target {target!r} (the daemon's --target)")
    y: float | str | None
    if labels:
        y = _label(record[target], target)
    else:
        y = _number(record[target])
        if y is None:
            raise BadRequest(f"target {target!r} must be a finite number")
        if not -TARGET_LIMIT < y < TARGET_LIMIT:
            raise BadRequest(out_of_range(f"target {target!r}", y))
    if record_id is not None and set(record) == {"id", target}:
        return Example(None, y, record_id)  # a late label
    values, wrapped = _unwrapped(record, ("id", target))
    skip = ("id",) if wrapped else ("id", target)
    features = _features(values, expected, skip=skip)
    if not keyed:
        return Example(features, y, record_id)
    from streamlearn.keys.fields import key_text

    key = key_text(given)
    if not isinstance(key, str):
        raise BadRequest(f'"key": {key[1]} (a keyed daemon learns {{"key": K, "x": {{...}}, ...}})')
    return Example(features, y, record_id, key)


def _each(
    records: list[dict[str, object]], batch: bool, read: Callable[[dict[str, object]], T]
) -> list[T]:
    out = []
    for index, record in enumerate(records):
        try:
            out.append(read(record))
        except BadRequest as exc:
            if not batch:
                raise
            raise BadRequest(f"record {index}: {exc}", exc.status) from None
    return out


def parse_queries(
    body: bytes, expected: Collection[str], keyed: bool = False
) -> tuple[list[Query], bool]:
    """The records of a ``POST /predict`` body, and whether it was an array.

    Values must be finite numbers; every name in ``expected`` must be present. ``keyed``:
    each record names its model's key (``{"key": K, "x": {...}}``).

    >>> parse_queries(b'{"x": {"a": 1, "b": 2.5}}', expected=["a"])
    ([Query(features={'a': 1.0, 'b': 2.5}, id=None)], False)
    >>> parse_queries(b'[{"id": "r1", "a": 1}, {"a": 2}]', expected=["a"])[0]
    [Query(features={'a': 1.0}, id='r1'), Query(features={'a': 2.0}, id=None)]
    >>> try:
    ...     parse_queries(b'[{"a": 1}, {"c": 2}]', expected=["a"])
    ... except BadRequest as exc:
    ...     print(exc.status.value, exc)
    400 record 1: missing features: a
    """
    records, batch = _records(_load(body), 'features, or {"x": {...}}')
    return _each(records, batch, lambda record: _query(record, expected, keyed)), batch


def parse_examples(
    body: bytes, target: str, expected: Collection[str], labels: bool = False, keyed: bool = False
) -> list[Example]:
    """The records of a ``POST /learn`` body: ``target`` is the label's key. ``labels``: a
    classifier's body, whose target is label text (a number or a bool as its JSON text).
    ``keyed``: each record (not a late label) names its model's key under ``key``.

    >>> parse_examples(b'[{"x": {"a": 1}, "y": 2}, {"id": "r1", "y": 3}]', "y", ["a"])
    [Example(features={'a': 1.0}, y=2.0, id=None), Example(features=None, y=3.0, id='r1')]
    >>> [e.y for e in parse_examples(b'[{"a": 1, "y": "Yes"}, {"a": 2, "y": 1}]', "y", [], True)]
    ['Yes', '1']
    """
    records, batch = _records(_load(body), "features and the target")
    return _each(records, batch, lambda record: _example(record, target, expected, labels, keyed))


def parse_features(body: bytes, expected: Collection[str]) -> dict[str, float]:
    """The feature dict of a one-record ``POST /predict`` body, or ``BadRequest``.

    >>> parse_features(b'{"x": {"a": 1, "b": 2.5}}', expected=["a"])
    {'a': 1.0, 'b': 2.5}
    >>> try:
    ...     parse_features(b'{"a": 1, "c": NaN}', expected=["a", "b"])
    ... except BadRequest as exc:
    ...     print(exc.status.value, exc)
    400 body contains NaN: feature values must be finite numbers
    """
    document = _load(body)
    if not isinstance(document, dict):
        raise BadRequest('body must be a JSON object of features, or {"x": {...}}')
    return _query(document, expected).features
