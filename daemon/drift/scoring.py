"""How the drift monitor scores a prediction of the run's task: a regressor's absolute error,
a classifier's 0/1 error, and the challenger's own test-then-train for either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from streamlearn.classify.task import error as class_error
from streamlearn.models.answer import predicted

if TYPE_CHECKING:
    from streamlearn.classify.space import ClassSpace

__all__ = ["ClassScoring", "Prediction", "RegressionScoring", "Scoring", "class_error"]

#: What a model predicted for one record: a regressor's value, or a classifier's ``Proba``
#: (class probabilities indexed by class code).
Prediction = float | tuple[float, ...]


class Scoring(Protocol):
    """What the monitor asks of the run's task."""

    #: Whether the errors are a classifier's 0/1 errors.
    classification: bool

    def error(self, y: float, yhat: Any, /) -> float:
        """The error of the model's prediction ``yhat`` (a ``Prediction``) for ``y``."""
        ...

    def challenger_error(self, model: Any, x: Mapping[str, float], y: float, /) -> float | None:
        """A challenger's test then train on one record: its error (None: not scored)."""
        ...


class RegressionScoring:
    """A regressor's error is ``|y - yhat|``; a challenger predicts with ``predict_one``.

    >>> from streamlearn.models.sgd import SGDRegressor
    >>> scoring = RegressionScoring()
    >>> scoring.error(1.0, 0.25)
    0.75
    >>> scoring.challenger_error(SGDRegressor(lr=0.1), {"a": 1.0}, 2.0)   # it predicted 0.0
    2.0
    """

    classification = False

    @staticmethod
    def error(y: float, yhat: Any) -> float:
        """The absolute error of a prediction."""
        return abs(y - yhat)

    @staticmethod
    def challenger_error(model: Any, x: Mapping[str, float], y: float) -> float | None:
        """The error of ``model``'s prediction for ``x``, made before it learns ``(x, y)``.

        Not finite (NaN, inf): the prediction was not finite and the model did not learn
        (the monitor drops the challenger). Never None (a regressor's None is NaN here).
        """
        guess = predicted(model.predict_one(x))
        if math.isfinite(guess):
            model.learn_one(x, y)
        return abs(y - guess)


class ClassScoring:
    """A classifier's error is ``streamlearn.classify.task.error`` (``class_error`` here): 1.0
    when the predicted class, the first code with the largest probability, is not the class
    code, else 0.0. A challenger is asked for
    ``predict_proba_one`` and learns the label ``classes`` gives the code.

    Parameters
    ----------
    classes
        The run's class space (the learner's): codes to what a model learns, and its
        answers back to probabilities by code. Not pickled: the monitor is given the
        restored learner's space when it is built again.

    Examples
    --------
    >>> from river import naive_bayes
    >>> from streamlearn.classify.space import ClassSpace
    >>> space = ClassSpace(binary=False)
    >>> scoring = ClassScoring(space)
    >>> model = naive_bayes.GaussianNB()
    >>> scoring.challenger_error(model, {"a": 1.0}, space.encode("red")) is None  # cannot yet
    True
    >>> scoring.challenger_error(model, {"a": 1.0}, space.encode("red"))
    0.0
    >>> scoring.challenger_error(model, {"a": 9.0}, space.encode("blue"))
    1.0
    """

    classification = True

    def __init__(self, classes: ClassSpace) -> None:
        self.classes = classes

    #: The 0/1 error of class probabilities (``yhat``) for a class code (``y``).
    error = staticmethod(class_error)

    def challenger_error(self, model: Any, x: Mapping[str, float], y: float) -> float | None:
        """The 0/1 error of ``model``'s probabilities for ``x``, asked before it learns
        ``(x, y)``; None when it cannot predict yet (``{}``): it learns unscored, as River's
        ``progressive_val_score`` does. Probabilities that are not all finite give NaN and
        are not learned from (the monitor drops the challenger)."""
        classes = self.classes
        proba = classes.proba(model.predict_proba_one(x))
        if proba is not None and not all(p - p == 0.0 for p in proba):
            return math.nan
        model.learn_one(x, classes.model_label(y))
        return None if proba is None else class_error(y, proba)
