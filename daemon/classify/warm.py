"""A classification run warm-started from a classifier A: A's classes meet the stream's labels.

A's classes (``--class-map A_LABEL=STREAM_LABEL`` renames them) are the run's classes: given
``--classes`` must be the same set, and without it the stream's first label must be one of
them (:class:`WarmClassSpace`), so a stream that writes its classes otherwise stops with a
usage error before any record is learned. :func:`warm_classifier_for` builds B, its frozen
baseline A and that class space from the run's settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from river import base

from streamlearn.classify.space import (
    MAX_LABEL_CHARS,
    PAIRS,
    ClassSpace,
    Refusal,
    pair_member,
)
from streamlearn.config import AppUsageError, Settings
from streamlearn.models.batch import BatchModel, TransferError
from streamlearn.models.transfer import map_entries

__all__ = [
    "ClassMapError",
    "ClassMatch",
    "WarmClassSpace",
    "WarmClassifier",
    "match_classes",
    "parse_class_map",
    "warm_classifier_for",
    "warm_teacher",
]


class ClassMapError(AppUsageError):
    """The stream's classes are not model A's: a usage error (exit 2) naming ``--class-map``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, option="class-map")


def parse_class_map(text: str) -> dict[str, str]:
    """Read a ``--class-map`` value: ``A_LABEL=STREAM_LABEL`` pairs separated by commas.

    >>> parse_class_map("0=no, 1=yes")
    {'0': 'no', '1': 'yes'}
    >>> try:
    ...     parse_class_map("0=no,0=maybe")
    ... except ClassMapError as exc:
    ...     print(exc)
    --class-map names A's class '0' twice
    """
    mapping: dict[str, str] = {}
    for entry, a_label, stream_label in map_entries(text):
        if not a_label or not stream_label:
            raise ClassMapError(f"--class-map entry {entry!r} is not A_LABEL=STREAM_LABEL (0=no)")
        if len(stream_label) > MAX_LABEL_CHARS:
            raise ClassMapError(f"--class-map: a label is at most {MAX_LABEL_CHARS} characters")
        if a_label in mapping:
            raise ClassMapError(f"--class-map names A's class {a_label!r} twice")
        mapping[a_label] = stream_label
    return mapping


def _shown(labels: Sequence[str]) -> str:
    head = ", ".join(label[:40] for label in labels[:8])
    return head + (f" and {len(labels) - 8} more" if len(labels) > 8 else "")


def _same(one: str, other: str) -> bool:
    """Whether two labels are one class of a binary stream (``YES`` is ``yes``, ``1.0`` ``1``)."""
    if one == other:
        return True
    member = pair_member(one)
    return member is not None and member == pair_member(other)


class WarmClassSpace(ClassSpace):
    """A class space that takes model A's classes only, and checks the stream's first label.

    A label outside ``accepted`` (A's classes as stream labels; a binary space also takes
    another spelling of a known pair's member, ``YES`` for ``yes``) is a usage error while
    no label has been taken yet, and a dead letter afterwards (``third_class`` or
    ``unknown_class``, naming A).

    Examples
    --------
    >>> space = WarmClassSpace(True, ("0", "1"), "sklearn LogisticRegression")
    >>> try:
    ...     space.encode("yes")
    ... except ClassMapError as exc:
    ...     print(exc)
    the stream's first label 'yes' is not a class of model A (sklearn LogisticRegression:
    0, 1): map A's classes onto the stream's with --class-map 1=yes,0=no
    >>> space.encode("1.0"), space.encode("0"), space.first_label_pending
    (1.0, 0.0, False)
    >>> space.encode("2")
    Refusal(reason='third_class', detail="'2' is not a class of model A (0, 1)")
    """

    def __init__(
        self,
        binary: bool,
        accepted: Sequence[str],
        origin: str,
        *,
        classes: Sequence[str] | None = None,
        positive: str | None = None,
        max_classes: int = 100,
    ) -> None:
        super().__init__(binary, classes=classes, positive=positive, max_classes=max_classes)
        self.accepted = tuple(accepted)
        self.origin = origin
        #: True until the space took its first label (then a stray one is a dead letter).
        self.first_label_pending = True
        self._members = {pair_member(label) for label in accepted} - {None} if binary else set()
        self._taken: set[str] = set()  # label text as handed in, accepted (bounded)

    def accepts(self, label: str) -> bool:
        """Whether ``label`` (stripped) is one of A's classes."""
        if label in self.accepted:
            return True
        return bool(self._members) and pair_member(label) in self._members

    def encode(self, text: str) -> float | Refusal:
        if text not in self._taken:
            label = text.strip()
            if label and len(label) <= MAX_LABEL_CHARS and not self.accepts(label):
                if self.first_label_pending:
                    raise ClassMapError(self._mismatch(label))
                return Refusal(
                    "third_class" if self.binary else "unknown_class",
                    f"{label[:40]!r} is not a class of model A ({_shown(self.accepted)})",
                )
        code = super().encode(text)
        if type(code) is float:
            self.first_label_pending = False
            if len(self._taken) < 4 * self.max_classes + 64:
                self._taken.add(text)
        return code

    def numeric_codes(self) -> dict[float, int]:
        """No number is a code before the first label: the block parser hands it to ``encode``."""
        return {} if self.first_label_pending else super().numeric_codes()

    def _mismatch(self, label: str) -> str:
        hint = "A_LABEL=STREAM_LABEL,..."
        member = pair_member(label)
        if self.binary and member is not None and len(self.accepted) == 2:
            # The stream writes another known pair: map A's positive onto the stream's.
            stream_positive, stream_negative = PAIRS[member[0]]
            negative, positive = self._a_pair()
            hint = f"{positive}={stream_positive},{negative}={stream_negative}"
        return (
            f"the stream's first label {label[:40]!r} is not a class of model A "
            f"({self.origin}: {_shown(self.accepted)}): map A's classes onto the stream's "
            f"with --class-map {hint}"
        )

    def _a_pair(self) -> tuple[str, str]:
        """A's (negative, positive) as this space reads them."""
        first, second = self.accepted
        member = pair_member(first)
        positive_first = member is not None and member[1] == 1
        if self.declared_positive is not None:
            positive_first = _same(self.declared_positive, first)
        return (second, first) if positive_first else (first, second)


@dataclass(frozen=True)
class ClassMatch:
    """How A's classes meet the stream's: B's labels, its orientation and the class space."""

    #: A's classes as the stream's labels, in A's output order (None: a binary A whose
    #: classes are not named, which learns the stream's False/True).
    labels: tuple[str, ...] | None
    #: A binary A whose first class is the stream's positive one.
    flip: bool
    space: ClassSpace


def _mapped(classes: tuple[str, ...], class_map: str | None, origin: str) -> tuple[str, ...]:
    """A's classes renamed by ``--class-map`` (the others keep their own text)."""
    if not class_map:
        return classes
    mapping = parse_class_map(class_map)
    unknown = [label for label in mapping if label not in classes]
    if unknown:
        raise ClassMapError(
            f"--class-map names {_shown(unknown)}, which model A ({origin}) does not have; "
            f"its classes: {_shown(classes)}"
        )
    labels = tuple(mapping.get(label, label) for label in classes)
    if len(set(labels)) != len(labels):
        raise ClassMapError(f"--class-map sends two of A's classes to one label: {_shown(labels)}")
    return labels


def match_classes(
    a: BatchModel,
    binary: bool,
    *,
    class_map: str | None = None,
    classes: Sequence[str] | None = None,
    positive: str | None = None,
    max_classes: int = 100,
) -> ClassMatch:
    """Meet A's classes (``a.classes``, renamed by ``class_map``) with the stream's flags.

    ``classes`` (``--classes``) must be A's set; ``positive`` (``--positive-class``) one of
    A's. A binary stream's positive class is ``positive``, else the first of a known pair
    (``yes`` of yes/no), else A's own (its second class, as scikit-learn's ``classes_[1]``).

    >>> import numpy as np
    >>> a = BatchModel("linear", "A", ("x",), 1, (np.ones((1, 1)),), (np.zeros(1),),
    ...                ("identity",), output="sigmoid", classes=("0", "1"))
    >>> match = match_classes(a, True, class_map="0=yes,1=no")
    >>> match.labels, match.flip   # A's class 0 is the stream's positive class, yes
    (('yes', 'no'), True)
    >>> try:
    ...     match_classes(a, True, classes=("cat", "dog"), positive="dog")
    ... except ClassMapError as exc:
    ...     print(exc)
    --classes cat,dog are not model A's classes (A: 0, 1); map A's onto them with
    --class-map A_LABEL=STREAM_LABEL,...
    """
    if a.classes is None:
        if class_map:
            raise ClassMapError(
                f"model A ({a.origin}) does not name its classes: its output is the stream's "
                "positive class, so --class-map does not apply (a Keras A: name its outputs "
                "with --classes)"
            )
        return ClassMatch(None, False, _space(binary, classes, positive, max_classes))
    labels = _mapped(a.classes, class_map, a.origin)
    if classes is not None and not _same_set(labels, tuple(classes), binary):
        raise ClassMapError(
            f"--classes {','.join(classes)} are not model A's classes (A: {_shown(labels)}); "
            "map A's onto them with --class-map A_LABEL=STREAM_LABEL,..."
        )
    if not binary:
        if len(labels) > max_classes:
            raise AppUsageError(
                f"model A has {len(labels)} classes, more than --max-classes {max_classes}",
                option="max-classes",
            )
        if classes is not None:
            return ClassMatch(labels, False, _space(False, classes, positive, max_classes))
        space = WarmClassSpace(
            False, labels, a.origin, classes=labels, positive=positive, max_classes=max_classes
        )
        return ClassMatch(labels, False, space)
    return _match_binary(a, labels, classes, positive, max_classes)


def _match_binary(
    a: BatchModel,
    labels: tuple[str, ...],
    classes: Sequence[str] | None,
    positive: str | None,
    max_classes: int,
) -> ClassMatch:
    negative_a, positive_a = labels
    one, other = pair_member(negative_a), pair_member(positive_a)
    known_pair = one is not None and other is not None and one[0] == other[0] and one != other
    if positive is not None:
        chosen = positive.strip()
        if not (_same(chosen, negative_a) or _same(chosen, positive_a)):
            raise ClassMapError(
                f"--positive-class {chosen!r} is not a class of model A ({_shown(labels)})"
            )
        flip = _same(chosen, negative_a)
    elif known_pair:
        assert one is not None
        flip = one[1] == 1  # A's first class is its pair's positive member (yes of no/yes)
        chosen = negative_a if flip else positive_a
    else:
        chosen, flip = positive_a, False
    if classes is not None:
        declared = positive if positive is not None or known_pair else chosen
        return ClassMatch(labels, flip, _space(True, classes, declared, max_classes))
    if known_pair:
        space = WarmClassSpace(True, labels, a.origin, positive=positive, max_classes=max_classes)
    else:
        space = WarmClassSpace(
            True, labels, a.origin, classes=labels, positive=chosen, max_classes=max_classes
        )
    return ClassMatch(labels, flip, space)


def _same_set(labels: Sequence[str], given: Sequence[str], binary: bool) -> bool:
    if len(labels) != len(given):
        return False
    if not binary:
        return set(labels) == {label.strip() for label in given}
    return all(any(_same(label, g.strip()) for g in given) for label in labels)


def _space(
    binary: bool, classes: Sequence[str] | None, positive: str | None, max_classes: int
) -> ClassSpace:
    """A plain class space from the flags (as ``classify.build.class_space_for``)."""
    try:
        return ClassSpace(binary, classes=classes, positive=positive, max_classes=max_classes)
    except AppUsageError:
        raise
    except ValueError as exc:  # its message names the option
        raise AppUsageError(str(exc)) from None


@dataclass
class WarmClassifier:
    """B, its frozen baseline A, how to rebuild B (rollback), and the run's class space."""

    model: base.Classifier
    baseline: base.Classifier
    rebuild: Callable[[], base.Classifier]
    classes: ClassSpace


def warm_classifier_for(
    a: BatchModel,
    settings: Settings,
    feature_map: dict[str, str] | None,
    stream_features: list[str] | None,
) -> WarmClassifier:
    """B from a classifier A for this run: its classes matched with the stream's flags.

    Raises ``TransferError`` (A cannot start this run) or ``AppUsageError`` (the flags and
    A's classes disagree), both before any record is read.
    """
    from streamlearn.models.class_loaders import as_classifier
    from streamlearn.models.class_transfer import frozen_classifier, warm_classifier

    if settings.task == "regression":
        raise AppUsageError(
            f"--task regression needs a regressor, and model A ({a.origin}) is a classifier",
            option="task",
        )
    a = as_classifier(a, settings.classes, settings.positive_class)
    match = match_classes(
        a,
        _binary(a),
        class_map=settings.class_map,
        classes=settings.classes,
        positive=settings.positive_class,
        max_classes=settings.max_classes,
    )
    lr = settings.lr if settings.lr_from_flag else None  # None: suited to A

    def rebuild() -> base.Classifier:
        return warm_classifier(
            a,
            settings.transfer_mode,
            settings.trainable_layers,
            feature_map,
            stream_features,
            lr=lr,
            labels=match.labels,
            flip=match.flip,
        )

    model = rebuild()
    baseline = frozen_classifier(a, feature_map, stream_features, match.labels, match.flip)
    return WarmClassifier(model, baseline, rebuild, match.space)


def _binary(a: BatchModel) -> bool:
    """Whether classifier A knows two classes only (one sigmoid unit; River's binary ones)."""
    from streamlearn.models.registry import final_estimator

    if a.kind == "river":
        return not final_estimator(a.river_model)._multiclass
    return a.output == "sigmoid"


def warm_teacher(a: BatchModel, classes: ClassSpace, lr: float | None = None) -> base.Classifier:
    """Classifier A fine-tuning on, for a run of class space ``classes`` (a pseudo-label
    teacher ``warm:PATH``): B as the run's own warm start builds it from A, its classes as A
    names them and a binary one turned to the run's positive class.

    >>> import numpy as np
    >>> a = BatchModel("linear", "A", ("x",), 1, (np.array([[2.0]]),), (np.zeros(1),),
    ...                ("identity",), output="sigmoid", classes=("yes", "no"))
    >>> teacher = warm_teacher(a, ClassSpace(binary=True), lr=0.1)
    >>> round(teacher.predict_proba_one({"x": 1.0})[True], 6)   # True is yes: A's first class
    0.119203
    >>> try:
    ...     warm_teacher(a, ClassSpace(binary=False))
    ... except TransferError as exc:
    ...     print(exc)
    A is a binary classifier, and the run's model multiclass: a teacher answers the run's
    classes
    """
    from streamlearn.models.class_loaders import as_classifier
    from streamlearn.models.class_transfer import warm_classifier

    a = as_classifier(a, None, classes.declared_positive)
    binary = _binary(a)
    if binary != classes.binary:
        a_kind, run_kind = ("binary", "multiclass") if binary else ("multiclass", "binary")
        raise TransferError(
            f"{a.origin} is a {a_kind} classifier, and the run's model {run_kind}: a teacher "
            "answers the run's classes"
        )
    match = match_classes(
        a,
        binary,
        positive=classes.declared_positive,
        max_classes=max(classes.max_classes, len(a.classes or ())),
    )
    return warm_classifier(a, "finetune", lr=lr, labels=match.labels, flip=match.flip)
