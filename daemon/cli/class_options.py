"""The options of a classifier's stream: the task, the classes, the positive class, and the
classes of a warm start's model A.

Listed under "Model" in ``--help`` (``streamlearn.cli.options``); what they mean is
:class:`streamlearn.classify.space.ClassSpace`'s.
"""

from __future__ import annotations

import click

from streamlearn.classify.space import DEFAULT_MAX_CLASSES, MAX_CLASSES_CAP
from streamlearn.classify.task import TASKS
from streamlearn.cli.table import OptionDecorator, option

__all__ = ["CLASSIFICATION", "class_list"]


def class_list(
    ctx: click.Context | None, param: click.Parameter | None, value: str | None
) -> tuple[str, ...] | None:
    """``--classes`` as labels, stripped; an empty or a repeated one is a usage error.

    The split would otherwise drop an empty class (``--classes ,`` fixing none, ``a,,b``
    two) and the run go on with other classes than were meant.

    >>> class_list(None, None, " no, yes ")
    ('no', 'yes')
    >>> try:
    ...     class_list(None, None, "a,,b")
    ... except click.BadParameter as exc:
    ...     print(exc.message)
    'a,,b' has an empty class; write the labels between the commas, e.g. --classes a,b
    """
    if value is None:
        return None
    labels = tuple(label.strip() for label in value.split(","))
    if not all(labels):
        raise click.BadParameter(
            f"{value!r} has an empty class; write the labels between the commas, "
            "e.g. --classes a,b",
            ctx=ctx,
            param=param,
        )
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        twice = ", ".join(repr(label) for label in repeated)
        raise click.BadParameter(f"{value!r} lists {twice} twice", ctx=ctx, param=param)
    return labels


# A declarative table: one option per entry, its help text included.

#: The task and the classes of a classifier's target.
CLASSIFICATION: tuple[OptionDecorator, ...] = (
    option(
        "--task",
        default=None,
        type=click.Choice(TASKS),
        help="regression or classification. Default: the model's (logistic, softmax, "
        "mlp_classifier or a River classifier: classification). A regressor with --task "
        "classification is a usage error.",
    ),
    option(
        "--positive-class",
        default=None,
        metavar="LABEL",
        help="The positive class of a binary target (F1, ROC AUC). Not needed for 1/0, "
        "true/false or yes/no in any case: the first of each is positive. A binary model "
        "needs it for any other two labels.",
    ),
    option(
        "--classes",
        default=None,
        metavar="A,B,...",
        callback=class_list,
        help="Comma-separated class labels, fixed in advance (their order is their codes'); "
        "a label outside them is a dead letter (unknown_class). Default: the classes "
        "grow as labels arrive. The target column's labels are never features.",
    ),
    option(
        "--max-classes",
        default=DEFAULT_MAX_CLASSES,
        type=click.IntRange(min=1, max=MAX_CLASSES_CAP),
        help="Classes a multiclass target may bring; a label beyond is a dead letter "
        "(too_many_classes). A label is at most 256 characters (longer: too_long).",
    ),
    option(
        "--class-map",
        default=None,
        metavar="A=STREAM,...",
        help="With --warm-start of a classifier: model A's class labels -> the stream's, "
        "e.g. '0=no,1=yes'. A's classes (after the map) must be the stream's: its first "
        "label outside them is a usage error, later ones dead letters.",
    ),
)
