"""The classification parts a run is built with: its task, decided once, and its class space.

``app.build`` calls :func:`decide_task` on the model it built and, for a classifier,
:func:`class_space_for` (a new space, or the restored learner's on a resume). A mistake in
the flags is an ``AppUsageError`` (exit 2), a state learned with other classes an
``AppError`` (exit 1); both say what to do.
"""

from __future__ import annotations

from streamlearn.classify.space import MAX_CLASSES_CAP, ClassSpace, pair_member
from streamlearn.classify.task import REGRESSION, binary_only, choose_task
from streamlearn.config import AppError, AppUsageError, Settings

__all__ = ["class_space_for", "decide_task"]


def decide_task(settings: Settings, model: object) -> str:
    """The run's task: ``--task``, else the model's; flags a regressor cannot use are refused.

    >>> from river import linear_model
    >>> settings = Settings(source="s.csv", follow=False, model="LinearRegression",
    ...                     positive_class="spam")
    >>> try:
    ...     decide_task(settings, linear_model.LinearRegression())
    ... except AppUsageError as exc:
    ...     print(exc.option, "|", exc)
    positive-class | --positive-class is a classifier's, and 'LinearRegression' is a
    regressor (it predicts a number); pick a classifier, e.g. --model logistic
    """
    task = choose_task(model, settings.task, settings.model)
    if task == REGRESSION:
        for option, value in (
            ("positive-class", settings.positive_class),
            ("classes", settings.classes),
        ):
            if value is not None:
                raise AppUsageError(
                    f"--{option} is a classifier's, and {settings.model!r} is a regressor "
                    "(it predicts a number); pick a classifier, e.g. --model logistic",
                    option=option,
                )
    return task


def class_space_for(
    settings: Settings, model: object, restored: ClassSpace | None = None
) -> ClassSpace:
    """The class space of a classifier's run: ``restored`` (a resumed learner's), else new.

    A new one is binary when the model is binary only (``task.binary_only``). A restored
    one takes up ``--max-classes``; ``--classes`` or ``--positive-class`` other than those it
    was learned with are refused (a new model needs ``--reset``).

    >>> from river import linear_model, tree
    >>> settings = Settings(source="s.csv", follow=False, model="HoeffdingTreeClassifier",
    ...                     classes=("a", "b", "c"))
    >>> space = class_space_for(settings, tree.HoeffdingTreeClassifier())
    >>> space.binary, space.labels
    (False, ['a', 'b', 'c'])
    >>> class_space_for(Settings(source="s.csv", follow=False), linear_model.Perceptron()).binary
    True
    """
    if not 1 <= settings.max_classes <= MAX_CLASSES_CAP:  # the CLI bounds it; the config too
        raise AppUsageError(
            f"--max-classes is from 1 to {MAX_CLASSES_CAP}, not {settings.max_classes}",
            option="max-classes",
        )
    if restored is not None:
        _check_resumed(settings, restored)
        restored.max_classes = settings.max_classes
        return restored
    try:
        return ClassSpace(
            binary_only(model),
            classes=settings.classes,
            positive=settings.positive_class,
            max_classes=settings.max_classes,
        )
    except AppUsageError:
        raise
    except ValueError as exc:  # its message names the option
        raise AppUsageError(str(exc)) from None


def _check_resumed(settings: Settings, restored: ClassSpace) -> None:
    """Refuse ``--classes``/``--positive-class`` other than those ``restored`` was made with."""
    where = f"the state in {settings.state_dir}"
    if settings.classes is not None:
        given = list(settings.classes)
        same = restored.fixed and (
            sorted(given) == sorted(restored.labels)
            if restored.binary
            else given == restored.labels
        )
        if not same:
            held = ",".join(restored.labels) if restored.fixed else "none fixed"
            raise AppError(
                f"{where} was learned with classes {held!r}, not {','.join(given)!r}; "
                "use --reset to start a new model"
            )
    positive = settings.positive_class
    if positive is not None and not _same_positive(positive.strip(), restored):
        raise AppError(
            f"{where} was learned with positive class {restored.positive!r}, not {positive!r}; "
            "use --reset to start a new model"
        )


def _same_positive(positive: str, restored: ClassSpace) -> bool:
    """Whether ``positive`` names ``restored``'s positive class (a known pair's any way)."""
    if positive == restored.declared_positive or positive == restored.positive:
        return True
    held = restored.positive
    return (
        held is not None
        and pair_member(held) is not None
        and (pair_member(held) == pair_member(positive))
    )
