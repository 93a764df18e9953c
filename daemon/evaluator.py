"""Scoring a model on a stream without learning it: ``--no-learn``, like ``vw -t``.

An :class:`Evaluator` is a :class:`~streamlearn.learner.Learner` that predicts and scores each
labeled record (the metrics, the rolling window and the curve are those of the stream it
scores) and never calls the model's ``learn_one``: the model's bytes do not change. The run
that uses it writes no checkpoint, so a state dir evaluated on held-out data is left exactly
as it was (model, position and counters).
"""

from __future__ import annotations

import math

from streamlearn.learner import Learner
from streamlearn.metrics import DIVERGED, update_all

__all__ = ["NO_LEARN_CONFLICTS", "Evaluator"]

#: Options that cannot go with ``--no-learn`` (option name -> why), checked by the wiring.
NO_LEARN_CONFLICTS = {
    "reset": "--no-learn leaves the state as it is: drop --reset",
    "pseudo-label": "--no-learn learns nothing, pseudo-labels included: drop --pseudo-label",
}


class Evaluator(Learner):
    """Test without train: the prequential scores of a model that does not learn.

    Examples
    --------
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> trained = Learner(SGDRegressor(lr=0.1))
    >>> for _ in range(50):
    ...     _ = trained.step({"x": 1.0}, 2.0)
    >>> evaluator = Evaluator.of(trained)
    >>> before = dict(evaluator.model.weights)
    >>> evaluator.step({"x": 1.0}, 3.0)
    1.99997...
    >>> evaluator.model.weights == before, evaluator.records_scored, evaluator.summary()["mae"]
    (True, 1, 1.00002...)
    """

    #: ``Learner.learns``: the model never learns here, so no compiled block path may run.
    learns = False

    @classmethod
    def of(cls, learner: Learner) -> Evaluator:
        """An evaluator of ``learner``'s model (and frozen baseline), with fresh scores."""
        evaluator = cls(learner.model, rolling_window=learner.rolling_window)
        if learner.baseline is not None:
            from streamlearn import metrics

            evaluator.baseline = learner.baseline
            evaluator.baseline_metrics = metrics.new_metrics()
        return evaluator

    @property
    def records_scored(self) -> int:
        """Labeled records scored (``records_learned`` counts them, as nothing is learned)."""
        return self.records_learned

    def step(self, x: dict[str, float], y: float) -> float | None:
        """Predict and score one labeled record; the model is left as it was. None when the
        model gives no prediction (River's None): not scored, as in ``progressive_val_score``."""
        yhat = self.model.predict_one(x)
        if yhat is None:
            return None
        if not -DIVERGED < yhat < DIVERGED:
            return math.nan
        self._score(x, y, yhat)
        return float(yhat)

    def step_with_prediction(self, x: dict[str, float], y: float, yhat: float) -> None:
        """Score a prediction made earlier (a late label); nothing is learned."""
        self._score(x, y, yhat)

    def learn_weighted(self, x: dict[str, float], y: float, w: float) -> None:
        """Nothing is learned, pseudo-labels included."""

    def _score(self, x: dict[str, float], y: float, yhat: float) -> None:
        update_all(self.metrics, y, yhat)
        if self.baseline is not None:
            self._score_baseline(x, y, yhat)
        self._remember(y, yhat)
