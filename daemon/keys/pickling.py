"""Pickles whose plain objects come back with their attributes set one by one.

A new key's model is a copy of the spec's model, made by unpickling it (19 us, against
River's ``clone`` at 450-500 us). The default pickle restores an object's ``__dict__`` in one
update, which leaves it a dict of its own; an object made by its constructor shares its
class's key table with every other instance (CPython keeps its attributes "inline"). The
interpreter's specialised attribute and method loads rely on that table: a thousand keys'
models each with a dict of its own miss them on every record and take the generic lookup.
Measured on ``StandardScaler | LinearRegression``, 1,000 models over 100,000 records: River's
own ``predict_one`` + ``learn_one`` took 10-15% longer on unpickled models than on cloned
ones, and as long as on cloned ones when unpickled from :func:`dumps`.

Only the spec's model is pickled so (``keys.build.fresh_models``). A key's state written to
the store is not: this pickler calls Python for each object it writes, which made a spill of
an ``sgd`` key 60 -> 93 us; a key read back from the store keeps the plain pickle's dicts.

:class:`InlinePickler` writes a plain object as ``cls.__new__(cls)`` followed by its
attributes as "slot state", which ``pickle`` sets with ``setattr`` in order: the standard
opcodes (``NEWOBJ``, ``BUILD``), read by any unpickler, old code included. Objects with
their own pickling (``__reduce__``, ``__getstate__``, ``__setstate__``, ``__slots__``,
``__setattr__``, ``__new__``) are pickled as they ask.

>>> import pickle
>>> from river import linear_model, preprocessing
>>> model = preprocessing.StandardScaler() | linear_model.LinearRegression()
>>> model.learn_one({"x": 1.0}, 2.0)
>>> back = pickle.loads(dumps(model))
>>> back.predict_one({"x": 3.0}) == model.predict_one({"x": 3.0})
True
"""

from __future__ import annotations

import copyreg
import io
import pickle
from typing import Any

__all__ = ["InlinePickler", "dumps"]

#: Whether each class seen is pickled as a plain object (decided once a class).
_plain: dict[type, bool] = {}


def _is_plain(cls: type) -> bool:
    """Whether instances of ``cls`` pickle by default as ``__new__`` and their ``__dict__``."""
    return (
        not issubclass(cls, type)
        and cls.__dictoffset__ != 0  # its instances have a __dict__
        and cls.__new__ is object.__new__
        and cls.__reduce_ex__ is object.__reduce_ex__
        and cls.__reduce__ is object.__reduce__
        and cls.__getstate__ is object.__getstate__
        and cls.__setattr__ is object.__setattr__
        and not hasattr(cls, "__setstate__")
        and not copyreg._slotnames(cls)  # type: ignore[attr-defined]
    )


class InlinePickler(pickle.Pickler):
    """``pickle.Pickler`` (highest protocol) writing plain objects' attributes as slot state."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        plain = _plain.get(cls)
        if plain is None:
            plain = _plain[cls] = _is_plain(cls)
        if not plain:
            return NotImplemented
        state = obj.__dict__
        if type(state) is not dict:
            return NotImplemented
        return copyreg.__newobj__, (cls,), (None, state)  # type: ignore[attr-defined]


def dumps(obj: object) -> bytes:
    """``obj`` pickled by :class:`InlinePickler`."""
    buffer = io.BytesIO()
    InlinePickler(buffer).dump(obj)
    return buffer.getvalue()
