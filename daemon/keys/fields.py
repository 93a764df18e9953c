"""The key of a record (``--key-by``): a CSV column, a JSON key or the Kafka message key.

The decoders hand a record and the raw value of its key field to :meth:`KeyField.keyed`,
which answers the record with its ``key`` set, or the dead letter: ``missing_key`` (absent,
null or empty, unless ``--default-key``), ``bad_key`` (a JSON object, list or bool, a key
that is not UTF-8), ``key_too_long``. A JSON number is a key as its text (``7``, ``2.5``).
"""

from __future__ import annotations

import math

from streamlearn.records import Record, Rejected

from .store import MAX_KEY_CHARS

__all__ = ["MESSAGE_KEY", "KeyField", "key_text"]

#: ``--key-by :key``: the Kafka message key, not a field of the value.
MESSAGE_KEY = ":key"


def key_text(value: object) -> str | tuple[str, str]:
    """The key's text, or ``(reason, detail)`` when ``value`` cannot be a key.

    Text is stripped; numbers are their text (an integer as ``str(int)``, a float as
    ``repr``, as JSON writes it back); None, empty or blank text is a missing key.

    >>> key_text(" store-7 "), key_text(7), key_text(2.5), key_text(b"k1")
    ('store-7', '7', '2.5', 'k1')
    >>> key_text(""), key_text(None)
    (('missing_key', 'the key is empty'), ('missing_key', 'the key is missing'))
    >>> key_text({"a": 1})[0], key_text([1])[0], key_text(True)[0]
    ('bad_key', 'bad_key', 'bad_key')
    """
    if value is None:
        return "missing_key", "the key is missing"
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return "bad_key", "the message key is not UTF-8 text"
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, bool):
        return "bad_key", f"the key is a bool ({str(value).lower()}), not text or a number"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            return "bad_key", f"the key is {value}"
        text = repr(value)
    else:
        kind = "an object" if isinstance(value, dict) else "a list"
        return "bad_key", f"the key is {kind}, not text or a number"
    if not text:
        return "missing_key", "the key is empty"
    if len(text) > MAX_KEY_CHARS:
        return "key_too_long", f"a key of {len(text)} characters (at most {MAX_KEY_CHARS})"
    return text


class KeyField:
    """Where a record's key is (``--key-by``) and what a record without one gets.

    Parameters
    ----------
    by
        The CSV column or JSON key, or ``:key`` for the Kafka message key.
    default
        The key of a record whose key is missing or empty (``--default-key``); None: such a
        record is a dead letter (``missing_key``).

    Examples
    --------
    >>> from streamlearn.sources.base import Raw
    >>> field = KeyField("store")
    >>> field.keyed(Record({"a": 1.0}, 2.0, None, Raw(b"", offset=0)), 7).key
    '7'
    >>> field.keyed(Record({"a": 1.0}, 2.0, None, Raw(b"", offset=0)), "").reason
    'missing_key'
    >>> KeyField(":key").keyed(Record({}, None, None, Raw(b"", offset=0, key=b"s1")), None).key
    's1'
    """

    def __init__(self, by: str, default: str | None = None) -> None:
        if not by:
            raise ValueError("--key-by names a field, or :key for the message key")
        if default is not None:
            checked = key_text(default)
            if not isinstance(checked, str):
                raise ValueError(f"--default-key: {checked[1]}")
            default = checked
        self.by = by
        #: The field of the value holding the key; None: the message key.
        self.field: str | None = None if by == MESSAGE_KEY else by
        self.default = default

    def keyed(self, record: Record, value: object) -> Record | Rejected:
        """``record`` with its key (``value``: its key field's, unused for ``:key``)."""
        if self.field is None:
            value = record.raw.key
        text = key_text(value)
        if isinstance(text, str):
            record.key = text
            return record
        reason, detail = text
        if reason == "missing_key" and self.default is not None:
            record.key = self.default
            return record
        where = "message key" if self.field is None else f"key field {self.field!r}"
        return Rejected(reason, f"{where}: {detail}", record.raw)
