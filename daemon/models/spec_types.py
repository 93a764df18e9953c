"""The types a model spec's keyword values must have, read from each class's signature.

River checks few of its arguments: ``LinearRegression(l2=b'x')`` is built, then fails at the
first record. :func:`check_arguments` compares each value with the parameter's annotation
(resolved with ``typing.get_type_hints``) or, for a parameter without one, with the type of
its default, so that such a spec is refused when it is built.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["check_arguments", "non_finite"]


def non_finite(value: Any) -> bool:
    """Whether a literal holds NaN or infinity (``1e999`` is a literal), at any depth.

    >>> non_finite((1.0, 1e999)), non_finite({"a": 2.0})
    (True, False)
    """
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, tuple | list | set | frozenset):
        return any(non_finite(item) for item in value)
    if isinstance(value, dict):
        return any(non_finite(item) for item in value.values())
    return False


def _hints(cls: type) -> dict[str, Any]:
    """The annotations of the ``__init__`` that ``cls`` runs (its own or inherited)."""
    init = next(vars(klass)["__init__"] for klass in cls.__mro__ if "__init__" in vars(klass))
    try:
        return typing.get_type_hints(init)
    except Exception:  # an annotation this interpreter cannot resolve: go by the defaults
        return {}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _accepts(hint: Any, value: Any) -> bool:
    """Whether ``value`` (a literal or a built helper) fits the annotation ``hint``."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Union or isinstance(hint, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(hint))
    if hint is None or hint is type(None):
        return value is None
    if hint is float:
        return _is_number(value)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (bool, str, dict):
        return isinstance(value, hint)
    if hint is list or hint is tuple:
        return isinstance(value, list | tuple)
    if origin is not None:
        args = typing.get_args(hint)
        if isinstance(origin, type) and issubclass(origin, Mapping):
            return isinstance(value, dict) and all(
                _accepts(args[-1] if args else Any, item) for item in value.values()
            )
        if isinstance(origin, type) and issubclass(origin, Sequence):
            return isinstance(value, list | tuple) and all(
                _accepts(args[0] if args else Any, item) for item in value
            )
        return True  # a construct this check does not know: the class decides
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _default_accepts(default: Any, value: Any) -> bool:
    """Without an annotation, a value of the default's kind (any number for a number)."""
    if default is None or default is inspect.Parameter.empty:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if _is_number(default):
        return _is_number(value)
    if isinstance(default, tuple | list):
        return isinstance(value, tuple | list)
    return isinstance(value, type(default))


def _describe(hint: Any) -> str:
    """The annotation in words, for the error message."""
    if hint is None or hint is type(None):
        return "None"
    if typing.get_origin(hint) is typing.Union or isinstance(hint, types.UnionType):
        args = typing.get_args(hint)
        if float in args:  # an integer is a number too
            args = tuple(arg for arg in args if arg is not int)
        return " or ".join(_describe(arg) for arg in args)
    words = {float: "a number", int: "an integer", bool: "True or False", str: "a string"}
    if hint in words:
        return words[hint]
    origin = typing.get_origin(hint)
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return "a dict"
    if isinstance(origin, type) and issubclass(origin, Sequence):
        args = typing.get_args(hint)
        return f"a tuple of {_describe(args[0])}s" if args else "a tuple"
    name = getattr(hint, "__name__", str(hint))
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def check_arguments(cls: type, name: str, kwargs: Mapping[str, Any]) -> None:
    """Refuse keyword values that do not fit ``cls``'s parameters; ``ValueError`` says which.

    >>> from streamlearn.models.sgd import SGDRegressor
    >>> check_arguments(SGDRegressor, "sgd", {"lr": 0.1})
    >>> try:
    ...     check_arguments(SGDRegressor, "sgd", {"lr": b"x"})
    ... except ValueError as exc:
    ...     print(exc)
    sgd's lr must be a number, got b'x'
    """
    parameters = inspect.signature(cls).parameters
    hints = _hints(cls)
    for key, value in kwargs.items():
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        parameter = parameters.get(key)
        if parameter is None:
            known = ", ".join(p for p in parameters if p not in ("self", "args", "kwargs"))
            raise ValueError(f"{name} has no argument {key!r}; its arguments: {known}")
        if non_finite(value):
            raise ValueError(f"{name}'s {key} must be finite, got {shown}")
        if key in hints:
            if not _accepts(hints[key], value):
                raise ValueError(f"{name}'s {key} must be {_describe(hints[key])}, got {shown}")
        elif not _default_accepts(parameter.default, value):
            default = parameter.default
            kind = (
                "True or False"
                if isinstance(default, bool)
                else "a number"
                if _is_number(default)
                else f"like {default!r}"
            )
            raise ValueError(
                f"{name}'s {key} must be {kind} (its default is {default!r}), got {shown}"
            )
