"""What both learners keep besides their metrics and window (``Learner``, and
``streamlearn.classify.learner.ClassLearner``): the model, the baseline and its guard, the
counts, the learning curve, the feature names and the weighted (pseudo-label) learning."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamlearn.curve import Curve
from streamlearn.models.champion import GuardOptions, guard_for

if TYPE_CHECKING:
    from streamlearn.models.weights import WeightedLearning

__all__ = ["LearnerBase"]


class LearnerBase:
    """The prequential bookkeeping both learners keep (``Learner``, and
    ``streamlearn.classify.learner.ClassLearner``): the model, the baseline and its guard,
    the counts, the learning curve, the feature names and the weighted (pseudo-label)
    learning. Their metrics, window and ``step`` are their own.

    Parameters
    ----------
    model
        The model learned.
    rolling_window
        Size of the rolling window of the rolling metrics (at least 1).
    baseline
        An optional frozen model scored on the same records (warm start).
    guard
        With a baseline: the options of the baseline guard (``streamlearn.models.champion``).
    """

    #: Whether ``step`` learns (``streamlearn.evaluator.Evaluator`` only scores: then no
    #: compiled block path, which learns in its kernels, may take the records).
    learns: bool = True

    #: The feature names the model learned from, kept once ``track_features`` was called
    #: (when the stream's features are not fixed); None while not kept.
    feature_names: set[str] | None = None

    #: Labeled records learned unscored: the model could not predict them yet (``step``).
    records_unscored: int = 0

    #: How a weighted record reaches the model (made at the first one; its draws are state).
    _weighting: WeightedLearning | None = None

    def __init__(
        self,
        model: Any,
        *,
        rolling_window: int = 1000,
        baseline: Any = None,
        guard: GuardOptions | None = None,
    ) -> None:
        if rolling_window < 1:
            raise ValueError("rolling_window must be at least 1")
        self.model = model
        self.rolling_window = rolling_window
        self.baseline = baseline
        self.guard = guard_for(baseline, rolling_window, guard, model)
        self.records_learned = 0
        self.pseudo_learned = 0
        self.baseline_scored = 0
        self.curve = Curve()

    def track_features(self) -> None:
        """Keep ``feature_names`` from now on: what an HTTP prediction may pass to the model,
        when no header or ``--features`` fixes them (a feature a model never learned can grow
        its state when predicted on: River's scalers add it to their statistics)."""
        if self.feature_names is None:
            self.feature_names = set()

    def _noted(self, x: dict[str, float]) -> None:
        """Keep the names of a record learned, when they are kept (``track_features``)."""
        if self.feature_names is not None:
            self.feature_names.update(x)

    def _taught(self, y: float) -> Any:
        """What the model learns for a record's target ``y`` (a regressor: ``y`` itself)."""
        return y

    def learn_weighted(self, x: dict[str, float], y: float, w: float) -> None:
        """Learn a pseudo-label with weight ``w`` (never scored: metrics are for true labels).

        The weight reaches a pipeline's final estimator; a model that cannot take one
        learns the record with probability ``w`` (``streamlearn.models.weights``).
        """
        weighting = self._weighting
        if weighting is None:
            from streamlearn.models.weights import WeightedLearning

            self._weighting = weighting = WeightedLearning()
        if not weighting.learn(self.model, x, self._taught(y), w):
            return
        self._noted(x)
        self.pseudo_learned += 1

    def _restart_from_warm_start(self) -> None:
        assert self.guard is not None
        self.reset_model(self.guard.restart_model())

    def reset_model(self, model: Any) -> None:
        """Swap the model (drift actions, divergence restore); metrics carry on."""
        self.model = model
