"""Routing the records of a classifier: as ``router.Router`` does, with class probabilities.

A labeled record is tested then trained on (``ClassLearner.step``: the probabilities by
class code, given before learning); an unlabeled one gets its class and probabilities
written, and waits in the label join with them, so a late label is scored with what was
given then. The batch errors the divergence guard, the drift monitor and telemetry see are
the 0/1 errors (wrong class: 1.0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamlearn.classify.learner import ClassLearner, diverged, finite
from streamlearn.classify.metrics import Proba
from streamlearn.classify.task import error, predicted
from streamlearn.records import Record

from ..interfaces import Prediction
from .router import Router

__all__ = ["ClassRouter", "prediction_line"]


def prediction_line(
    learner: ClassLearner, record_id: str | None, where: dict[str, object], proba: Proba
) -> dict[str, Any]:
    """An output line: ``prediction`` (the class's label) and ``probabilities`` by label.

    >>> from river import linear_model
    >>> from streamlearn.classify.space import ClassSpace
    >>> learner = ClassLearner(linear_model.LogisticRegression(), ClassSpace(binary=True))
    >>> line = prediction_line(learner, "a", {"offset": 0}, (0.25, 0.75))
    >>> line["prediction"], line["probabilities"]
    ('1', {'0': 0.25, '1': 0.75})
    """
    classes = learner.classes
    return {
        "id": record_id,
        "position": where,
        "prediction": classes.label(predicted(proba)),
        "probabilities": classes.proba_json(proba),
    }


class ClassRouter(Router):
    """``Router`` for a ``ClassLearner``: class codes in, class probabilities out."""

    @property
    def classifier(self) -> ClassLearner:
        """The learner, a classifier's."""
        learner = self.host.learner
        assert isinstance(learner, ClassLearner)
        return learner

    def _labeled_step(self) -> Callable[[Record, float], None]:
        """Test-then-train of one labeled record: the probabilities by class code, given
        before learning; the batch keeps the 0/1 error."""
        counters = self.counters
        step = self.classifier.step
        monitor, pseudo, host = self.monitor, self.pseudo, self.host
        errors = self.errors.floats
        track = self.tracks_errors
        every = self.predictions_all

        def learn(item: Record, y: float) -> None:
            x = item.x
            proba = step(x, y)
            if proba is None:  # learned, not scored: the model could not predict it yet
                return
            if not finite(proba):
                self.guard.restore(item.raw.where(), diverged(proba))
                return
            self.last_x = x
            if every:
                self.write_scored(item.id, item.raw.where(), proba, y)
            if track:
                errors.append(error(y, proba))
                if monitor is not None:
                    monitor.observe(counters.records_seen - 1, x, y, proba, host)
            if pseudo is not None:
                pseudo.observe_labeled(x, y, proba, host)

        return learn

    def unlabeled(self, item: Record) -> None:
        """Predict its class (never serving NaN), then let the join and pseudo-labels keep it."""
        self.counters.records_unlabeled += 1
        learner = self.classifier
        proba = learner.serve(item.x)  # the frozen baseline's, while it serves
        if proba is not None and not finite(proba):
            if not self.guard.restore_unless_cold(item.raw.where(), diverged(proba), self.last_x):
                return
            proba = learner.serve(item.x)
            if proba is not None and not finite(proba):
                return  # never serve NaN: the restored model cannot predict this either
        if proba is None:
            return  # the model cannot predict yet: nothing to serve
        self._keep(item, proba)

    def _prediction_line(
        self, record_id: str | None, where: dict[str, object], yhat: Prediction
    ) -> dict[str, Any]:
        """An output line: the class's label and the probabilities by label."""
        assert isinstance(yhat, tuple)  # a classifier predicts probabilities
        return prediction_line(self.classifier, record_id, where, yhat)

    def _label_out(self, y: float) -> object:
        """A class code as an output line writes it: its label."""
        return self.classifier.classes.label(y)

    def _error(self, y: float, yhat: Prediction) -> float:
        """A prediction's error as the batch keeps it: 0/1 (wrong class: 1.0)."""
        assert isinstance(yhat, tuple)  # a classifier predicts probabilities
        return error(y, yhat)

    def _learn_joined(self, x: dict[str, float], y: float, yhat: Prediction) -> None:
        """Learn a record with the probabilities given when its features arrived."""
        assert isinstance(yhat, tuple)  # a classifier's join keeps its probabilities
        self.classifier.step_with_prediction(x, y, yhat)

    #: The block path's names for the output of a classifier's rows.
    write_class_prediction = Router.write_prediction
    write_class_scored = Router.write_scored
