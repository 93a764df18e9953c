"""The decoder of JSON values: one object in, a ``Record``, a late ``Label`` or a ``Rejected``.

The record types and the closed set of rejection reasons are :mod:`streamlearn.records`';
the caps on a JSON stream's feature names are :mod:`streamlearn.json_keys`'.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from streamlearn.json_keys import MAX_FEATURES, FeatureNames, TargetWatch
from streamlearn.records import Decoded, Label, Record, Rejected, check_target, class_code
from streamlearn.sources.base import Raw

if TYPE_CHECKING:
    from streamlearn.classify.space import ClassSpace
    from streamlearn.keys.fields import KeyField

__all__ = ["JsonDecoder"]


def _float(number: int | float) -> float:
    """``float(number)``, but an integer beyond float range (the standard library reads 400
    digits as an ``int``) is ±inf, as ``1e999`` reads: ``non_finite``, never ``OverflowError``.

    >>> _float(10**400), _float(-(10**400)), _float(7)
    (inf, -inf, 7.0)
    """
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


class JsonDecoder:
    """Decodes JSON values: ``{"x": {...}, "y": ...}`` or a flat object holding the target.

    ``{"id": ..., "y": ...}`` with no features is a late ``Label``. The id comes
    from ``id_field`` (default ``id``) or else from the message key.

    Examples
    --------
    >>> decoder = JsonDecoder()
    >>> decoder.decode(Raw(b'{"x": {"a": 1}, "y": 2}', offset=0))
    Record(x={'a': 1.0}, y=2.0, id=None, raw=...)
    >>> decoder.decode(Raw(b'{"a": 1, "b": 2, "y": null, "id": 7}', offset=0))
    Record(x={'a': 1.0, 'b': 2.0}, y=None, id='7', raw=...)
    >>> decoder.decode(Raw(b'{"id": "7", "y": 3.5}', offset=0))
    Label(id='7', y=3.5, raw=...)
    >>> decoder.decode(Raw(b'{"a": 1e999, "y": 1}', offset=0)).reason
    'non_finite'

    Only an object under ``x`` is the envelope: a number there is a feature named ``x``.

    >>> decoder.decode(Raw(b'{"x": 1.5, "y": 2}', offset=0))
    Record(x={'x': 1.5}, y=2.0, id=None, raw=...)

    With ``classes`` (a classifier's), the target is a label: a string as it is, a number or
    a bool as its JSON text (``1``, ``true``); the record holds its class code.

    >>> from streamlearn.classify.space import ClassSpace
    >>> labels = JsonDecoder(classes=ClassSpace(binary=False))
    >>> labels.decode(Raw(b'{"a": 1, "y": "cat"}', offset=0)).y
    0.0
    >>> labels.decode(Raw(b'{"a": 1, "y": true}', offset=0)).y, labels.classes.labels
    (1.0, ['cat', 'true'])
    >>> labels.decode(Raw(b'{"a": 1, "y": ["cat"]}', offset=0)).reason
    'bad_shape'
    """

    def __init__(
        self,
        target: str = "y",
        features: Sequence[str] | None = None,
        id_field: str | None = None,
        skip_blank: bool = True,
        max_features: int = MAX_FEATURES,
        classes: ClassSpace | None = None,
        keys: KeyField | None = None,
    ) -> None:
        self.target = target
        #: Where a record's key is (``--key-by``: a top-level key, never a feature).
        self.keys = keys
        self._key_field = keys.field if keys is not None else None
        #: A classifier's classes: the target is a label, ``Record.y`` its class code.
        self.classes = classes
        self.features = list(features) if features is not None else None
        self.id_field = id_field or "id"
        self.skip_blank = skip_blank
        #: The names records brought, capped; None when ``features`` fixes them.
        self.names = FeatureNames(max_features) if features is None else None
        #: Says once when the first values all lack the target key (``--target`` wrong?).
        self.target_watch = TargetWatch(target)

    @property
    def plain(self) -> bool:
        """False: JSON values are not the plain CSV layout (``CsvDecoder.plain``)."""
        return False

    def changes_schema(self, raw: Raw) -> bool:
        """False: each JSON value names its own fields (no header row to switch at)."""
        return False

    def schema(self) -> dict[str, list[str]] | None:
        """The feature names records brought (``FeatureNames``), for the checkpoint; None when
        ``--features`` fixes them (``CsvDecoder.schema``)."""
        if self.names is None:
            return None
        return {"feature_names": sorted(self.names.names)}

    def restore_schema(self, schema: Mapping[str, Sequence[str]] | None) -> None:
        """Take up the feature names a checkpoint counted (``CsvDecoder.restore_schema``)."""
        if self.names is not None and schema is not None:
            self.names.names.update(schema.get("feature_names", ()))

    def decode_batch(self, raws: Sequence[Raw]) -> list[Decoded]:
        """``decode`` of each value, in order (the ``Decoder`` interface)."""
        decode = self.decode
        return [decode(raw) for raw in raws]

    def _loads(self, raw: Raw) -> Any:
        try:
            return orjson.loads(raw.value)
        except orjson.JSONDecodeError:
            pass
        # The slow path only on error: the standard library accepts NaN, Infinity and
        # 1e999, which lets us say "non_finite" instead of "bad_json" for them.
        try:
            text = raw.value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejected("undecodable", str(exc), raw)
        try:
            return json.loads(text)
        except ValueError as exc:
            return Rejected("bad_json", str(exc)[:200], raw)

    def decode(self, raw: Raw) -> Decoded:
        """One JSON value to a Record, a Label, a Rejected, or None for a blank line."""
        if raw.truncated:
            return Rejected("too_long", "line longer than the limit", raw)
        if not raw.value.strip():
            return None if self.skip_blank else Rejected("empty", "empty message", raw)
        obj = self._loads(raw)
        if isinstance(obj, Rejected):
            return obj
        if not isinstance(obj, dict):
            return Rejected("bad_shape", f"expected a JSON object, got {type(obj).__name__}", raw)
        if self.target_watch.watching:
            self.target_watch.see(obj)
        record_id = obj.get(self.id_field)
        if record_id is None and raw.key is not None:
            record_id = raw.key.decode("utf-8", "replace")
        elif record_id is not None:
            record_id = str(record_id)
        # Only an object under "x" is the envelope; anything else there is a feature named x.
        nested = obj.get("x")
        source: dict[str, Any] = nested if isinstance(nested, dict) else obj
        skip = (self.target, self.id_field, self._key_field) if source is obj else ()
        names = self.features if self.features is not None else [k for k in source if k not in skip]
        if (
            names
            and record_id is not None
            and obj.get(self.target) is not None
            and not any(name in source for name in names)
        ):
            names = []  # an id and a target only: a late label, whatever --features says
        x: dict[str, float] = {}
        for name in names:
            if name not in source:
                return Rejected("missing_feature", f"feature {name!r} is missing", raw)
            value = source[name]
            if value is None:
                return Rejected("missing_feature", f"feature {name!r} is null", raw)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return Rejected("non_numeric", f"feature {name!r} is {str(value)[:40]!r}", raw)
            value = _float(value)
            if value - value != 0.0:
                return Rejected("non_finite", f"feature {name!r} is {value}", raw)
            x[name] = value
        target = obj.get(self.target)
        y = None if target is None or target == "" else self._target(target, raw)
        if isinstance(y, Rejected):
            return y
        if y is None:  # unlabeled (a classifier's blank label too)
            if not x and record_id is None:
                return Rejected("bad_shape", "an object with neither features nor target", raw)
            return self._admitted(Record(x, None, record_id, raw), obj)
        if not x:
            if record_id is None:
                return Rejected("bad_shape", "a target without features or id", raw)
            return Label(record_id, y, raw)
        return self._admitted(Record(x, y, record_id, raw), obj)

    def _target(self, target: object, raw: Raw) -> float | Rejected | None:
        """The target (not null): its number, or with ``classes`` its class code (None: a
        blank label, unlabeled)."""
        if self.classes is not None:
            return self._class_code(target, raw)
        if isinstance(target, bool) or not isinstance(target, int | float):
            return Rejected("non_numeric", f"target is {str(target)[:40]!r}", raw)
        y = _float(target)
        return check_target(y, "target", raw) or y

    def _class_code(self, target: object, raw: Raw) -> float | Rejected | None:
        """A label's class code: a string as it is, a number or a bool as its JSON text."""
        assert self.classes is not None
        if isinstance(target, str):
            text = target
        elif isinstance(target, bool):
            text = "true" if target else "false"
        elif isinstance(target, int):
            text = str(target)
        elif isinstance(target, float):
            if not math.isfinite(target):
                return Rejected("non_finite", f"target is {target}", raw)
            text = repr(target)
        else:
            kind = "an object" if isinstance(target, dict) else "a list"
            return Rejected("bad_shape", f"target is {kind}, not a class label", raw)
        return class_code(self.classes, text, raw)

    def _admitted(self, record: Record, obj: dict[str, Any]) -> Record | Rejected:
        """The record with its key, unless it brings feature names beyond the cap
        (``FeatureNames``) or has no key it may have."""
        refused = self.names.refuse(record.x) if self.names is not None else None
        if refused is not None:
            return Rejected("too_many_features", refused, record.raw)
        keys = self.keys
        if keys is None:
            return record
        field = self._key_field
        return keys.keyed(record, obj.get(field) if field is not None else None)
