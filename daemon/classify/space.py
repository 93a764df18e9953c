"""The class labels of a classifier's stream: label text to a class code and back.

A classifier's ``Record.y`` (and ``Label.y``) is the class **code**, a float: the decoders
hand the target's text to :meth:`ClassSpace.encode`, which answers the code or a
:class:`Refusal` (a dead letter's reason and detail). The space is state: it is
checkpointed with the learner, and a resumed run decodes with the restored one.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import NamedTuple

from streamlearn.config import AppUsageError

__all__ = [
    "DEFAULT_MAX_CLASSES",
    "MAX_CLASSES_CAP",
    "MAX_LABEL_CHARS",
    "PAIRS",
    "ClassSetupError",
    "ClassSpace",
    "Proba",
    "Refusal",
]

#: Classes a multiclass stream may bring without ``--max-classes``.
DEFAULT_MAX_CLASSES = 100
#: The most ``--max-classes`` may say (checked before anything is allocated).
MAX_CLASSES_CAP = 10_000
#: The longest label text; a longer one is a dead letter (``too_long``).
MAX_LABEL_CHARS = 256
#: The binary label pairs known without ``--positive-class``: (positive, negative), any case;
#: ``1``/``0`` also by numeric value (``1.0``, ``0.0``).
PAIRS: tuple[tuple[str, str], ...] = (("1", "0"), ("true", "false"), ("yes", "no"))
_NUMERIC = 0  # the index of the 1/0 pair in PAIRS
_CUSTOM = -1  # a binary space whose positive class is --positive-class, not a known pair
_MEMBERS: dict[str, tuple[int, int]] = {
    text: (pair, code)
    for pair, (positive, negative) in enumerate(PAIRS)
    for text, code in ((positive, 1), (negative, 0))
}

#: Class probabilities indexed by class code (``ClassSpace.proba``).
Proba = tuple[float, ...]


class Refusal(NamedTuple):
    """Why a label cannot be a class: a dead letter's ``reason`` and ``detail``."""

    reason: str
    detail: str


class ClassSetupError(AppUsageError):
    """The labels of a binary stream need ``--positive-class``: a usage error (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, option="positive-class")


def pair_member(label: str) -> tuple[int, int] | None:
    """``(pair index in PAIRS, code)`` of a label of a known binary pair, else None.

    >>> pair_member("YES"), pair_member("0.0"), pair_member("maybe")
    ((2, 1), (0, 0), None)
    """
    member = _MEMBERS.get(label.lower())
    if member is not None or not label.isascii() or "_" in label:
        return member
    try:
        value = float(label)  # as the compiled CSV parser reads a number: by value
    except ValueError:
        return None
    return (_NUMERIC, 1) if value == 1.0 else (_NUMERIC, 0) if value == 0.0 else None


def _shown(labels: Sequence[str], limit: int = 5) -> str:
    """A short list of labels for a message."""
    head = ", ".join(repr(label[:40]) for label in labels[:limit])
    return head + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


class ClassSpace:
    """The classes of a stream: label text -> class code (a float), code -> label.

    Parameters
    ----------
    binary
        A binary model's space: code 1.0 is the positive class, 0.0 the negative. Labels
        ``1``/``0`` (by value), ``true``/``false`` and ``yes``/``no`` (any case) need no
        ``positive``: the first of each pair is positive. Any other labels need it.
    classes
        Fixes the labels in advance (``--classes``); their codes are their indices. A label
        outside them is refused (``unknown_class``). A binary space takes exactly two.
    positive
        The positive class (``--positive-class``). Matched exactly, except a member of a
        known pair, which is matched as the pair is (``--positive-class no`` makes ``no``,
        ``No``, ``NO`` positive and ``yes`` negative).
    max_classes
        How many classes a multiclass stream may bring (``--max-classes``); a label beyond
        is refused (``too_many_classes``).

    Examples
    --------
    A binary stream of a known pair: the first of the pair is the positive class, any case.

    >>> space = ClassSpace(binary=True)
    >>> space.encode("Yes"), space.encode("no"), space.encode("YES")
    (1.0, 0.0, 1.0)
    >>> space.labels, space.positive
    (['no', 'Yes'], 'Yes')
    >>> space.encode("maybe")
    Refusal(reason='third_class',
            detail="'maybe' is a third class for a binary model (classes 'no', 'Yes')")

    What a binary model learns and answers is a bool; a probability dict becomes a tuple by
    code, and back to label text for the output lines:

    >>> space.model_label(1.0), space.code_of(False)
    (True, 0)
    >>> space.proba({False: 0.25, True: 0.75})
    (0.25, 0.75)
    >>> space.proba_json((0.25, 0.75)), space.label(1)
    ({'no': 0.25, 'Yes': 0.75}, 'Yes')
    >>> space.proba({}) is None
    True

    ``1``/``0`` count by value, as the compiled CSV parser reads the cell:

    >>> numbers = ClassSpace(binary=True)
    >>> numbers.encode("1.0"), numbers.encode("0"), numbers.labels
    (1.0, 0.0, ['0', '1'])

    Other labels need ``positive``; without it the first label is a usage error:

    >>> try:
    ...     ClassSpace(binary=True).encode("spam")
    ... except ClassSetupError as exc:
    ...     print(exc)
    a binary model needs --positive-class for labels other than 1/0, true/false, yes/no: the
    first label is 'spam'; pass --positive-class spam or --positive-class with the other class
    >>> mail = ClassSpace(binary=True, positive="spam")
    >>> mail.encode("ham"), mail.encode("spam"), mail.labels
    (0.0, 1.0, ['ham', 'spam'])

    A multiclass space grows in order of arrival, up to ``max_classes``; a multiclass model
    learns the label text:

    >>> colours = ClassSpace(binary=False, max_classes=2)
    >>> colours.encode("red"), colours.encode("blue"), colours.encode("red")
    (0.0, 1.0, 0.0)
    >>> colours.encode("green").reason
    'too_many_classes'
    >>> colours.model_label(1.0), colours.code_of("red"), colours.code_of("green")
    ('blue', 0, None)
    >>> colours.proba({"blue": 0.9})
    (0.0, 0.9)

    ``classes`` fixes the set:

    >>> fixed = ClassSpace(binary=False, classes=["a", "b", "c"])
    >>> fixed.encode("c"), fixed.encode("d").reason
    (2.0, 'unknown_class')
    """

    def __init__(
        self,
        binary: bool,
        classes: Sequence[str] | None = None,
        positive: str | None = None,
        max_classes: int = DEFAULT_MAX_CLASSES,
    ) -> None:
        if not 1 <= max_classes <= MAX_CLASSES_CAP:
            raise ValueError(f"max_classes must be from 1 to {MAX_CLASSES_CAP}, not {max_classes}")
        if classes is not None and len(classes) > max_classes:
            raise ValueError(
                f"--classes lists {len(classes)} classes, more than --max-classes {max_classes}"
            )
        self.binary = binary
        self.max_classes = max_classes
        #: Whether ``classes`` fixed the labels in advance.
        self.fixed = classes is not None
        #: ``--positive-class`` as given (stripped), or None.
        self.declared_positive = (
            None if positive is None else _checked(positive, "--positive-class")
        )
        self._labels: list[str] = []  # multiclass: labels by code
        self._index: dict[str, int] = {}  # multiclass: label -> code
        self._names: list[str | None] = [None, None]  # binary: negative, positive (as seen)
        self._pair: int | None = None  # binary: the PAIRS index, _CUSTOM, or None (not yet)
        self._flip = False  # binary: the positive class is the pair's second member
        self._aliases: dict[str, float] = {}  # text as handed in -> code (bounded)
        fixed = [_checked(label, "--classes") for label in classes or ()]
        if len(set(fixed)) != len(fixed):
            raise ValueError(f"--classes lists a class twice: {_shown(fixed)}")
        if binary:
            self._set_up_binary(fixed)
        else:
            positive = self.declared_positive
            if fixed and positive is not None and positive not in fixed:
                raise ValueError(f"--positive-class {positive!r} is not one of --classes")
            self._labels = fixed
            self._index = {label: code for code, label in enumerate(fixed)}

    # -- binary set-up ------------------------------------------------------------------

    def _set_up_binary(self, fixed: list[str]) -> None:
        positive = self.declared_positive
        if fixed and len(fixed) != 2:
            raise ValueError(f"a binary model takes two --classes, not {len(fixed)}")
        if positive is not None:
            if not fixed:
                self._start(positive, positive=True)
                return
            if positive not in fixed:
                raise ValueError(f"--positive-class {positive!r} is not one of --classes")
            other = fixed[1] if fixed[0] == positive else fixed[0]
            if _one_pair(positive, other):
                self._start(positive, positive=True)
            else:  # any two labels: matched as given, even one of a known pair
                self._pair = _CUSTOM
            if self._pair != _NUMERIC:
                self._names = [other, positive]
            return
        if fixed:
            if not _one_pair(*fixed):
                raise ClassSetupError(
                    f"a binary model needs --positive-class for --classes {_shown(fixed)} "
                    f"(only {self._pairs_text()} need none): pass --positive-class "
                    f"{fixed[0]} or --positive-class {fixed[1]}"
                )
            for label in fixed:
                self._binary_code(label)

    @staticmethod
    def _pairs_text() -> str:
        return ", ".join("/".join(pair) for pair in PAIRS)

    def _start(self, label: str, positive: bool) -> None:
        """Take up the pair of the first label (or of ``--positive-class``)."""
        member = pair_member(label)
        if member is None:
            self._pair = _CUSTOM
            self._names[1 if positive else 0] = label
            return
        self._pair, code = member
        self._flip = positive and code == 0
        if self._pair == _NUMERIC:  # shown as the compiled parser would show it: 1 and 0
            self._names = ["1" if self._flip else "0", "0" if self._flip else "1"]

    def _binary_code(self, label: str) -> float | Refusal:
        if self._pair is None:
            if pair_member(label) is None:
                raise ClassSetupError(
                    f"a binary model needs --positive-class for labels other than "
                    f"{self._pairs_text()}: the first label is {label[:40]!r}; pass "
                    f"--positive-class {label[:40]} or --positive-class with the other class"
                )
            self._start(label, positive=False)  # the pair's first member is positive
        names = self._names
        if self._pair == _CUSTOM:
            for code in (1, 0):
                if names[code] == label:
                    return float(code)
            if names[0] is None:
                names[0] = label
                return 0.0
        else:
            member = pair_member(label)
            if member is not None and member[0] == self._pair:
                code = 1 - member[1] if self._flip else member[1]
                if names[code] is None:
                    names[code] = label  # shown as first seen
                return float(code)
        return Refusal(
            "third_class",
            f"{label[:40]!r} is a third class for a binary model "
            f"(classes {self.label(0)!r}, {self.label(1)!r})",
        )

    # -- encoding -----------------------------------------------------------------------

    def encode(self, text: str) -> float | Refusal:
        """The class code of a label's text (surrounding spaces ignored), or a ``Refusal``.

        Raises ``ClassSetupError`` at the first label of a binary space that is not of a
        known pair when no positive class was given. An empty label is the decoders' to
        treat (an unlabeled record): here it is refused (``empty``).
        """
        code = self._aliases.get(text)
        if code is not None:
            return code
        label = text.strip()
        if not label:
            return Refusal("empty", "the label is empty")
        if len(label) > MAX_LABEL_CHARS:
            return Refusal(
                "too_long", f"a label of {len(label)} characters (at most {MAX_LABEL_CHARS})"
            )
        answer = self._binary_code(label) if self.binary else self._multiclass_code(label)
        # Codes never change once given, so the text as handed in (with its spaces, its
        # line end) can answer at once next time; bounded, so odd spellings cannot grow it.
        if type(answer) is float and len(self._aliases) < 4 * self.max_classes + 64:
            self._aliases[text] = answer
        return answer

    def _multiclass_code(self, label: str) -> float | Refusal:
        code = self._index.get(label)
        if code is not None:
            return float(code)
        if self.fixed:
            return Refusal(
                "unknown_class", f"{label[:40]!r} is not one of --classes ({_shown(self._labels)})"
            )
        if len(self._labels) >= self.max_classes:
            return Refusal(
                "too_many_classes",
                f"{label[:40]!r} would be class {len(self._labels) + 1}, "
                f"over --max-classes {self.max_classes}",
            )
        self._index[label] = len(self._labels)
        self._labels.append(label)
        return float(self._index[label])

    # -- what the rest of the daemon reads ------------------------------------------------

    @property
    def labels(self) -> list[str]:
        """The label text of each class, by code (a binary space: ``[negative, positive]``).

        A binary class not seen yet reads as the canonical member of its pair (``no``), or,
        without a pair, as its code (``0``).
        """
        if not self.binary:
            return list(self._labels)
        return [self.label(0), self.label(1)]

    def numeric_codes(self) -> dict[float, int]:
        """The codes of the labels a number read from a CSV cell stands for, without
        changing the space (what the compiled block parser, which reads the cell as a
        number, may take as a code without ``encode``).

        A binary space of the ``1``/``0`` pair: ``{1.0: 1, 0.0: 0}`` (swapped when
        ``--positive-class 0``); any other binary space, or one whose pair is not known
        yet: ``{}``. A multiclass space: each label written as an integer exactly as
        ``str(int)`` writes it, of at most 15 digits (``3``, ``-2``; not ``3.0``, ``03`` or
        ``+3``, which are other labels than ``3``).

        >>> digits = ClassSpace(binary=False)
        >>> [digits.encode(label) for label in ("7", "3.0", "-2", "03", "x")]
        [0.0, 1.0, 2.0, 3.0, 4.0]
        >>> digits.numeric_codes()
        {7.0: 0, -2.0: 2}
        >>> flipped = ClassSpace(binary=True, positive="0")
        >>> flipped.numeric_codes()
        {1.0: 0, 0.0: 1}
        """
        if self.binary:
            if self._pair != _NUMERIC:
                return {}
            return {1.0: 0, 0.0: 1} if self._flip else {1.0: 1, 0.0: 0}
        table: dict[float, int] = {}
        for code, label in enumerate(self._labels):
            digits = label[1:] if label.startswith("-") else label
            plain = 0 < len(digits) <= 15 and digits.isascii() and digits.isdigit()
            if plain and str(int(label)) == label:
                table[float(int(label))] = code
        return table

    def __len__(self) -> int:
        """The number of classes: 2 for a binary space, the labels so far for multiclass."""
        return 2 if self.binary else len(self._labels)

    def label(self, code: float) -> str:
        """The label text of a class code."""
        index = int(code)
        if not self.binary:
            return self._labels[index]
        name = self._names[index]
        if name is not None:
            return name
        if self._pair is not None and self._pair != _CUSTOM:
            return PAIRS[self._pair][index if self._flip else 1 - index]
        return str(index)

    @property
    def positive(self) -> str | None:
        """The positive class's label: a binary space's code 1 (None until known), else
        ``--positive-class``, or the first of a known pair when exactly its two labels came."""
        if self.binary:
            return None if self._pair is None else self.label(1)
        if self.declared_positive is not None:
            return self.declared_positive
        if len(self._labels) == 2 and _one_pair(*self._labels):
            first = pair_member(self._labels[0])
            return self._labels[0] if first is not None and first[1] == 1 else self._labels[1]
        return None

    @property
    def positive_code(self) -> int | None:
        """The code of ``positive``, or None while it has none."""
        if self.binary:
            return None if self._pair is None else 1
        positive = self.positive
        return None if positive is None else self._index.get(positive)

    def model_label(self, code: float) -> bool | str:
        """What the model learns for a code: a bool for a binary model, else the label text."""
        return code == 1.0 if self.binary else self._labels[int(code)]

    def code_of(self, model_label: Hashable) -> int | None:
        """The code of a label as the model names it (a bool, or the text); None if unknown."""
        if self.binary:
            if isinstance(model_label, str):
                return None
            if model_label is True or model_label == 1:
                return 1
            if model_label is False or model_label == 0:
                return 0
            return None
        return self._index.get(model_label) if isinstance(model_label, str) else None

    def proba(self, model_proba: Mapping[Hashable, float] | None) -> Proba | None:
        """A model's ``predict_proba_one`` answer as probabilities by code (a class missing
        from it counts 0); None when it answers ``{}`` or None (it cannot predict yet)."""
        if not model_proba:
            return None
        get = model_proba.get
        if self.binary:
            return (float(get(False, 0.0)), float(get(True, 0.0)))
        return tuple([float(get(label, 0.0)) for label in self._labels])

    def proba_json(self, proba: Proba) -> dict[str, float]:
        """``{label: probability}`` for the output lines; a class added after the
        prediction reads 0."""
        return {
            label: proba[code] if code < len(proba) else 0.0
            for code, label in enumerate(self.labels)
        }

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_aliases"] = {}  # a cache: rebuilt as labels come
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        kind = "binary" if self.binary else "multiclass"
        return f"ClassSpace({kind}, labels={self.labels!r}, positive={self.positive!r})"


def _checked(label: str, option: str) -> str:
    """A label given on the command line, stripped and within bounds (else ValueError)."""
    text = label.strip()
    if not text:
        raise ValueError(f"{option} has an empty class")
    if len(text) > MAX_LABEL_CHARS:
        raise ValueError(f"{option} has a class of {len(text)} characters (at most 256)")
    return text


def _one_pair(first: str, second: str) -> bool:
    """Whether two labels are the two members of one known pair (``yes`` and ``No``)."""
    one, other = pair_member(first), pair_member(second)
    return one is not None and other is not None and one[0] == other[0] and one[1] != other[1]
