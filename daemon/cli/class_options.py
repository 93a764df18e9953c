"""The options of a classifier's stream: the task, the classes, the positive class, and the
classes of a warm start's model A.

Listed under "Model" in ``--help`` (``streamlearn.cli.options``); what they mean is
:class:`streamlearn.classify.space.ClassSpace`'s.
"""

from __future__ import annotations

import click

from streamlearn.classify.space import DEFAULT_MAX_CLASSES, MAX_CLASSES_CAP
from streamlearn.classify.task import TASKS
from streamlearn.cli.table import OptionDecorator

__all__ = ["CLASSIFICATION"]

# A declarative table: one click.option per entry, its help text included.

#: The task and the classes of a classifier's target.
CLASSIFICATION: tuple[OptionDecorator, ...] = (
    click.option(
        "--task",
        default=None,
        type=click.Choice(TASKS),
        envvar="STREAMLEARN_TASK",
        help="regression or classification. Default: the model's (logistic, softmax, "
        "mlp_classifier or a River classifier: classification). A regressor with --task "
        "classification is a usage error.",
    ),
    click.option(
        "--positive-class",
        default=None,
        metavar="LABEL",
        envvar="STREAMLEARN_POSITIVE_CLASS",
        help="The positive class of a binary target (F1, ROC AUC). Not needed for 1/0, "
        "true/false or yes/no in any case: the first of each is positive. A binary model "
        "needs it for any other two labels.",
    ),
    click.option(
        "--classes",
        default=None,
        metavar="A,B,...",
        envvar="STREAMLEARN_CLASSES",
        help="Comma-separated class labels, fixed in advance (their order is their codes'); "
        "a label outside them is a dead letter (unknown_class). Default: the classes "
        "grow as labels arrive. The target column's labels are never features.",
    ),
    click.option(
        "--max-classes",
        default=DEFAULT_MAX_CLASSES,
        show_default=True,
        type=click.IntRange(min=1, max=MAX_CLASSES_CAP),
        envvar="STREAMLEARN_MAX_CLASSES",
        help="Classes a multiclass target may bring; a label beyond is a dead letter "
        "(too_many_classes). A label is at most 256 characters (longer: too_long).",
    ),
    click.option(
        "--class-map",
        default=None,
        metavar="A=STREAM,...",
        envvar="STREAMLEARN_CLASS_MAP",
        help="With --warm-start of a classifier: model A's class labels -> the stream's, "
        "e.g. '0=no,1=yes'. A's classes (after the map) must be the stream's: its first "
        "label outside them is a usage error, later ones dead letters.",
    ),
)
