"""The task of a model (regression or classification) and the 0/1 error of a class prediction.

The task is read from the built estimator: River's ``base.Classifier`` (our classifiers
subclass it), or a pipeline whose last step is one. Whether a classifier is binary only is
River's own declaration, ``Classifier._multiclass``.
"""

from __future__ import annotations

from collections.abc import Sequence

from streamlearn.config import AppUsageError
from streamlearn.models.registry import final_estimator

__all__ = [
    "CLASSIFICATION",
    "REGRESSION",
    "TASKS",
    "binary_only",
    "choose_task",
    "error",
    "infer_task",
    "predicted",
]

REGRESSION = "regression"
CLASSIFICATION = "classification"
#: The values of ``--task``.
TASKS: tuple[str, ...] = (REGRESSION, CLASSIFICATION)


def infer_task(model: object) -> str:
    """``classification`` for a classifier (or a pipeline ending in one), else ``regression``.

    >>> from river import linear_model, preprocessing
    >>> infer_task(linear_model.LogisticRegression())
    'classification'
    >>> infer_task(preprocessing.StandardScaler() | linear_model.LogisticRegression())
    'classification'
    >>> infer_task(linear_model.LinearRegression())
    'regression'
    """
    from river import base  # here: the CLI reads TASKS without importing River

    return CLASSIFICATION if isinstance(final_estimator(model), base.Classifier) else REGRESSION


def binary_only(model: object) -> bool:
    """Whether a classifier (or a pipeline ending in one) knows only two classes.

    River says so of each classifier (``Classifier._multiclass``): ``LogisticRegression``,
    ``Perceptron``, ``PAClassifier`` and our ``logistic`` are binary; trees, forests,
    ``GaussianNB``, ``KNNClassifier``, ``SoftmaxRegression`` and our ``softmax`` are not.

    >>> from river import linear_model, preprocessing, tree
    >>> binary_only(preprocessing.StandardScaler() | linear_model.Perceptron())
    True
    >>> binary_only(tree.HoeffdingTreeClassifier())
    False
    """
    from river import base

    last = final_estimator(model)
    return isinstance(last, base.Classifier) and not last._multiclass


def choose_task(model: object, flag: str | None, spec: str) -> str:
    """The task of a run: ``--task`` (``flag``) if given, else the model's.

    ``--task classification`` with a regressor is a usage error (it cannot learn classes),
    as is ``--task regression`` with a classifier.

    >>> from river import linear_model
    >>> choose_task(linear_model.LogisticRegression(), None, "LogisticRegression")
    'classification'
    >>> try:
    ...     choose_task(linear_model.LinearRegression(), "classification", "LinearRegression")
    ... except AppUsageError as exc:
    ...     print(exc)
    --task classification needs a classifier, and 'LinearRegression' is a regressor (it
    predicts a number); pick a classifier, e.g. --model logistic, or leave --task out
    """
    task = infer_task(model)
    if flag is None or flag == task:
        return task
    if flag not in TASKS:
        raise AppUsageError(f"--task is one of {', '.join(TASKS)}, not {flag!r}", option="task")
    if flag == CLASSIFICATION:
        raise AppUsageError(
            f"--task classification needs a classifier, and {spec!r} is a regressor "
            "(it predicts a number); pick a classifier, e.g. --model logistic, or leave "
            "--task out",
            option="task",
        )
    raise AppUsageError(
        f"--task regression needs a regressor, and {spec!r} is a classifier "
        "(it predicts a class); pick a regressor, e.g. --model sgd, or leave --task out",
        option="task",
    )


def predicted(proba: Sequence[float]) -> int:
    """The predicted class: the first code with the largest probability.

    >>> predicted((0.2, 0.4, 0.4))
    1
    """
    return proba.index(max(proba))


def error(y_code: float, proba: Sequence[float]) -> float:
    """The 0/1 error of a prediction: 1.0 when the predicted class is not ``y_code``.

    >>> error(1.0, (0.3, 0.7)), error(0.0, (0.3, 0.7))
    (0.0, 1.0)
    """
    return 0.0 if predicted(proba) == int(y_code) else 1.0
