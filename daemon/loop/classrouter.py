"""Routing the records of a classifier: as ``router.Router`` does, with class probabilities.

A labeled record is tested then trained on (``ClassLearner.step``: the probabilities by
class code, given before learning); an unlabeled one gets its class and probabilities
written, and waits in the label join with them, so a late label is scored with what was
given then. The batch errors the divergence guard, the drift monitor and telemetry see are
the 0/1 errors (wrong class: 1.0).
"""

from __future__ import annotations

from typing import Any

from streamlearn.classify.learner import ClassLearner, diverged, finite
from streamlearn.classify.metrics import Proba
from streamlearn.classify.task import error, predicted
from streamlearn.records import Decoded, Label, Record, Rejected

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

    def route(self, items: list[Decoded]) -> None:
        """Test-then-train, predict, dead-letter or join each decoded item, in order."""
        counters = self.counters
        learner = self.classifier
        step = learner.step
        errors = self.errors.floats
        track = self.tracks_errors
        for item in items:
            if item is None:  # a header or blank line: not a record
                continue
            counters.records_seen += 1
            if type(item) is Record:
                y = item.y
                if y is None:
                    self.unlabeled(item)
                    continue
                x = item.x
                proba = step(x, y)
                if proba is None:  # learned, not scored: the model could not predict it yet
                    continue
                if not finite(proba):
                    self.guard.restore(item.raw.where(), diverged(proba))
                    continue
                self.last_x = x
                if self.predictions_all:
                    self.write_class_scored(item.id, item.raw.where(), proba, y)
                if track:
                    errors.append(error(y, proba))
                    if self.monitor is not None:
                        self.monitor.observe(counters.records_seen - 1, x, y, proba, self.host)
                if self.pseudo is not None:
                    self.pseudo.observe_labeled(x, y, proba, self.host)
            elif type(item) is Rejected:
                self.reject(item)
            elif type(item) is Label:
                self.late_label(item)

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
        self.write_class_prediction(item.id, item.raw.where(), proba)
        index = self.counters.records_seen - 1
        if self.join is not None and item.id is not None:
            self.join.remember(item, proba, index)
        if self.pseudo is not None:
            self.pseudo.offer(item, proba, index, self.host)

    def write_class_prediction(
        self, record_id: str | None, where: dict[str, object], proba: Proba
    ) -> None:
        """The class and probabilities for an unlabeled record, counted and written."""
        self.counters.predictions += 1
        self.predictions.write(prediction_line(self.classifier, record_id, where, proba))
        telemetry = self.host.telemetry
        if telemetry is not None:
            telemetry.predictions(1)

    def write_class_scored(
        self, record_id: str | None, where: dict[str, object], proba: Proba, y: float
    ) -> None:
        """The prediction of a labeled record, made before it was learned, with its label."""
        line = prediction_line(self.classifier, record_id, where, proba)
        line["label"] = self.classifier.classes.label(y)
        self.predictions.write(line)

    def late_label(self, item: Label) -> None:
        """Join a late label to its waiting features; score the probabilities given then."""
        pending = None
        if self.join is not None:
            pending = self.join.take(item, self.counters.records_seen - 1)
        if pending is None:
            self.reject(
                Rejected("unjoined_label", f"no pending features for id {item.id!r}", item.raw)
            )
            return
        proba = pending.yhat
        assert isinstance(proba, tuple)  # a classifier's join keeps its probabilities
        self.classifier.step_with_prediction(pending.x, item.y, proba)
        if self.pseudo is not None:
            self.pseudo.observe_labeled(pending.x, item.y, proba, self.host)
        if self.host.telemetry is not None or self.monitor is not None:
            self.errors.append(error(item.y, proba))
        if self.monitor is not None:
            index = self.counters.records_seen - 1
            self.monitor.observe(index, pending.x, item.y, proba, self.host)
