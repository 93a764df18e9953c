"""The JSON of the HTTP face: a ``POST /predict`` body read and checked, answers made JSON-safe.

A request body becomes a feature dict or a :class:`BadRequest` whose message is sent back to
the client; an answer's NaN and infinities become ``null`` (JSON has no such numbers).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from http import HTTPStatus

__all__ = ["BadRequest", "finite_or_null", "parse_features"]


class BadRequest(ValueError):
    """A client error in a request; the message is sent back as the JSON ``error``."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


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


def parse_features(body: bytes, expected: Collection[str]) -> dict[str, float]:
    """The feature dict of a ``POST /predict`` body, or ``BadRequest`` saying what is wrong.

    The body is ``{"x": {...}}`` or a flat object of features. Values must be finite
    numbers (JSON booleans are not numbers here). Every name in ``expected`` must be
    present; other names are passed on (River models ignore features they never learned).

    >>> parse_features(b'{"x": {"a": 1, "b": 2.5}}', expected=["a"])
    {'a': 1.0, 'b': 2.5}
    >>> try:
    ...     parse_features(b'{"a": 1, "c": NaN}', expected=["a", "b"])
    ... except BadRequest as exc:
    ...     print(exc.status.value, exc)
    400 body contains NaN: feature values must be finite numbers
    """
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except BadRequest:
        raise
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest('body must be a JSON object of features, or {"x": {...}}')
    if len(document) == 1 and isinstance(document.get("x"), dict):
        document = document["x"]
    features: dict[str, float] = {}
    bad: list[str] = []
    for name, value in document.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            bad.append(name)
            continue
        try:
            number = float(value)
        except OverflowError:  # an integer literal beyond float range
            bad.append(name)
            continue
        if not math.isfinite(number):
            bad.append(name)
            continue
        features[name] = number
    if bad:
        raise BadRequest(f"features must be finite numbers: {', '.join(sorted(bad))}")
    missing = [name for name in expected if name not in features]
    if missing:
        raise BadRequest(f"missing features: {', '.join(sorted(missing))}")
    if not features:
        raise BadRequest("no features given")
    return features
