"""The effect of pseudo-labels on a classifier: its accuracy against a twin's without them.

As ``streamlearn.labels.effect`` for a regressor, with the 0/1 error (wrong class: 1) in
place of the absolute error: the twin learns only the true labels, both are scored on every
true label, and ``inspect`` reports their accuracy (``accuracy_with``, ``accuracy_without``,
``accuracy_difference``: with minus without, positive while pseudo-labels help). The guard
compares **accuracy**, in points: it pauses pseudo-labeling when, over the last ``records``
true labels, the model's accuracy is more than ``margin`` below its twin's (``margin`` 0.05:
five points), i.e. when it made more than ``margin * records`` errors more than its twin.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from streamlearn.classify.learner import finite
from streamlearn.classify.task import error
from streamlearn.labels.effect import PseudoEffect

if TYPE_CHECKING:
    from streamlearn.classify.space import ClassSpace
    from streamlearn.interfaces import Prediction

log = logging.getLogger(__name__)

__all__ = ["ClassPseudoEffect"]


def _accuracy(errors: float, n: int) -> float | None:
    """Right over all, from a count of 0/1 errors (exact: the count is a whole float)."""
    return (n - errors) / n if n else None


class ClassPseudoEffect(PseudoEffect):
    """A classifier's twin, the two accuracies, and the guard that compares them.

    Parameters are ``PseudoEffect``'s, with ``margin`` in accuracy points (absolute);
    ``use_classes`` gives it the learner's class space before the first record.

    Examples
    --------
    A student that learns a wrong pseudo-label after every true label, and its twin:

    >>> from river import linear_model, optim
    >>> from streamlearn.classify.learner import ClassLearner
    >>> from streamlearn.classify.space import ClassSpace
    >>> space = ClassSpace(binary=True)
    >>> class Host:  # what it uses of the loop's ModelHost
    ...     learner = ClassLearner(linear_model.LogisticRegression(optim.SGD(0.5)), space)
    ...     telemetry, records_seen = None, 0
    >>> effect = ClassPseudoEffect(margin=0.05, records=50)
    >>> effect.use_classes(space)
    >>> for i in range(80):
    ...     a = (i % 7) / 7 - 0.5
    ...     x, y = {"a": a}, space.encode("yes" if a > 0 else "no")
    ...     proba = Host.learner.step(x, y)
    ...     if proba is not None:
    ...         effect.observe(x, y, proba, Host)
    ...     if effect.state == "on":  # a harmful pseudo-label: the wrong class, at full weight
    ...         Host.learner.learn_weighted({"a": 0.5}, space.encode("no"), 1.0)
    >>> effect.state, effect.pauses
    ('paused', 1)
    >>> s = effect.summary()
    >>> s["compares"], s["accuracy_with"] < s["accuracy_without"]
    ('accuracy', True)
    """

    #: The learner's class space (``use_classes``): the twin's answers by code.
    classes: ClassSpace | None = None

    def use_classes(self, classes: ClassSpace) -> None:
        """Speak the codes of ``classes`` (the learner's space, also after a restart)."""
        self.classes = classes

    @property
    def _space(self) -> ClassSpace:
        assert self.classes is not None, "use_classes before the first record"
        return self.classes

    def _twin_answer(self, x: dict[str, float]) -> Prediction | None:
        return self._space.proba(self.twin.predict_proba_one(x))

    def _sound(self, value: Prediction | None) -> bool:
        # None: the twin cannot predict yet (not a divergence: it is not compared).
        return value is None or (isinstance(value, tuple) and finite(value))

    def _errors(self, y: float, yhat: Prediction, twin_yhat: Prediction) -> tuple[float, float]:
        assert isinstance(yhat, tuple) and isinstance(twin_yhat, tuple)  # a classifier's
        return error(y, yhat), error(y, twin_yhat)

    def _twin_learn(self, x: dict[str, float], y: float) -> None:
        self.twin.learn_one(x, self._space.model_label(y))

    def _hurting(self) -> bool:
        """Over a full window, the model's accuracy more than ``margin`` below its twin's."""
        return (
            len(self.window) == self.records
            and self.window_with > self.window_without + self.margin * self.records
        )

    def _log_pause(self, mae_with: float, mae_without: float) -> None:
        log.warning(
            "pseudo-labels hurt: over the last %d true labels the model's accuracy was %.4f, "
            "%.1f points below its twin's %.4f (trained without them); serving the twin and "
            "pausing pseudo-labeling for %d true labels",
            self.records,
            1.0 - mae_with,
            100.0 * (mae_with - mae_without),
            1.0 - mae_without,
            self.pause_left,
        )

    def _event(self, action: str, mae_with: float | None, mae_without: float | None) -> None:
        def accuracy(error_rate: float | None) -> float | None:
            # The rate is a whole count of errors over the window: round() recovers it.
            records = self.records
            return None if error_rate is None else _accuracy(round(error_rate * records), records)

        self.events.append(
            {
                "action": action,
                "measured": self.measured,
                "window_accuracy_with": accuracy(mae_with),
                "window_accuracy_without": accuracy(mae_without),
            }
        )

    def summary(self) -> dict[str, Any]:
        """The ``pseudo_labels.effect`` part of ``inspect --json`` for a classifier.

        Accuracy over the true labels compared (``measured``), cumulative and over the
        last ``records``; ``accuracy_difference`` is with minus without (positive: they
        help); ``compares`` says what the guard compares.
        """
        n = len(self.window)
        out: dict[str, Any] = {"measured": self.measured, "compares": "accuracy"}
        for prefix, errors_with, errors_without, count in (
            ("", self.abs_with, self.abs_without, self.measured),
            ("rolling_", self.window_with, self.window_without, n),
        ):
            with_, without = _accuracy(errors_with, count), _accuracy(errors_without, count)
            if prefix:
                out["rolling_window"] = self.records
            out[f"{prefix}accuracy_with"] = with_
            out[f"{prefix}accuracy_without"] = without
            out[f"{prefix}accuracy_difference"] = (
                None if with_ is None or without is None else with_ - without
            )
        out["guard"] = super().summary()["guard"]
        return out
