"""The prequential step of a classifier (predict the class probabilities, score, then learn)
and the state it keeps: the class metrics, their rolling window, the class space.

The order is River's ``evaluate.progressive_val_score``: the probabilities of a record
are asked for before the model learns its label, a record the model cannot predict yet
(``{}`` or None) is learned unscored, and the metrics
(:mod:`streamlearn.classify.metrics`) equal River's on the same records. The learner
speaks class **codes** (``Record.y``); the model learns ``ClassSpace.model_label(code)``
(a bool for a binary model, the label text otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamlearn.classify.losscurve import LossMark, block_points, mark, rolling_loss
from streamlearn.classify.metrics import (
    ClassMetrics,
    Proba,
    Window,
    binary_loss,
    class_loss,
    predicted,
    score,
)
from streamlearn.classify.space import ClassSpace
from streamlearn.curve import Curve
from streamlearn.learner_base import LearnerBase

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from streamlearn.models.champion import GuardOptions

__all__ = ["ClassLearner", "ClassPrequentialState", "Proba", "finite"]


def finite(proba: Proba) -> bool:
    """Whether every probability is a finite number (a diverged model answers NaN or inf).

    One sum: a NaN or an infinity anywhere makes it NaN or infinite (probabilities are far
    too small to overflow).

    >>> finite((0.25, 0.75)), finite((0.5, float("nan"))), finite((float("inf"), 0.0))
    (True, False, False)
    """
    total = sum(proba)
    return total - total == 0.0


@dataclass
class ClassPrequentialState:
    """A classifier's prequential state as one record, for the compiled block path.

    ``ClassLearner.export_prequential`` makes one (its own objects: the kernel updates them
    in place, e.g. ``metrics.update_many`` and ``window.add``) or, with ``copy=True``, a
    snapshot; ``ClassLearner.import_prequential`` takes one back.
    """

    records_learned: int
    metrics: ClassMetrics
    window: Window
    curve: Curve
    #: The log loss at the accuracy curve's points (``streamlearn.classify.losscurve``).
    loss_curve: Curve = field(default_factory=Curve)


class ClassLearner(LearnerBase):
    """Holds a classifier, its class space and its prequential state.

    Parameters
    ----------
    model
        A River classifier (or pipeline) or one of the project's own.
    classes
        The class space of the stream: codes to what the model learns and back.
    rolling_window
        Size of the rolling window of the rolling metrics.
    baseline
        An optional frozen model A scored on the same records (warm start).
    guard
        With a baseline: the guard's options. It compares B and A on the 0/1 error
        (their accuracy over the window) and decides which one serves.

    Examples
    --------
    >>> from river import linear_model, optim
    >>> from streamlearn.classify.space import ClassSpace
    >>> space = ClassSpace(binary=True)
    >>> learner = ClassLearner(linear_model.LogisticRegression(optimizer=optim.SGD(0.5)), space)
    >>> learner.step({"x": 1.0}, space.encode("yes"))   # a fresh model: 50 % either way
    (0.5, 0.5)
    >>> learner.step({"x": 1.0}, space.encode("yes"))
    (0.4365..., 0.5634...)
    >>> learner.summary()["accuracy"], learner.summary()["confusion"]
    (0.5, {'yes': {'no': 1, 'yes': 1}})
    """

    #: The task of the learner (``streamlearn.interfaces.LearnerLike``).
    task = "classification"

    def __init__(
        self,
        model: Any,
        classes: ClassSpace,
        *,
        rolling_window: int = 1000,
        baseline: Any = None,
        guard: GuardOptions | None = None,
    ) -> None:
        # ``curve``: (records learned, rolling accuracy, cumulative accuracy).
        super().__init__(model, rolling_window=rolling_window, baseline=baseline, guard=guard)
        self.classes = classes
        self.metrics = ClassMetrics(classes.binary)
        self.baseline_metrics = ClassMetrics(classes.binary) if baseline is not None else None
        self.window = Window(rolling_window)
        #: (records learned, rolling loss, cumulative loss) at the same points.
        self.loss_curve = Curve()

    # -- predictions --------------------------------------------------------------------

    def _answer(
        self, model: Any, x: dict[str, float]
    ) -> tuple[Proba | None, int | None, Mapping[Hashable, float]]:
        """The model's probabilities by code, the code it would choose (River's
        ``max(proba, key=proba.get)`` in the dict's order) and its dict."""
        answer: Mapping[Hashable, float] | None = model.predict_proba_one(x)
        proba = self.classes.proba(answer)
        if proba is None or not answer:
            return None, None, {}
        choice = self.classes.code_of(max(answer, key=answer.__getitem__))
        return proba, choice, answer

    def predict(self, x: dict[str, float]) -> Proba | None:
        """The model's class probabilities, without learning (None: it cannot predict yet)."""
        return self._answer(self.model, x)[0]

    def serve(self, x: dict[str, float]) -> Proba | None:
        """The probabilities served: the model's, or the baseline's while the guard says."""
        guard = self.guard
        if guard is not None and guard.serving_baseline:
            proba = self._answer(self.baseline, x)[0]
            if proba is not None and finite(proba):
                return proba
        return self.predict(x)

    def sound(self, x: dict[str, float]) -> bool:
        """Whether the model predicts ``x`` without NaN/inf (None, "not yet", is sound)."""
        proba = self.predict(x)
        return proba is None or finite(proba)

    # -- the prequential step -----------------------------------------------------------

    def step(self, x: dict[str, float], y: float) -> Proba | None:
        """Test then train on one labeled record (``y`` its class code); returns the
        probabilities given before learning.

        None: the model could not predict yet (learned, unscored). Probabilities that are
        not all finite come back unscored and unlearned (the caller's guard restores).
        """
        # ``_answer``, ``score`` and ``_remember`` inline: this runs once a record.
        classes, model = self.classes, self.model
        answer: Mapping[Hashable, float] | None = model.predict_proba_one(x)
        proba = classes.proba(answer)
        label = classes.model_label(y)
        if proba is None:
            model.learn_one(x, label)
            self._noted(x)
            self.records_learned += 1
            self.records_unscored += 1
            return None
        total = sum(proba)
        if total - total != 0.0:  # not ``finite``
            return proba
        assert answer is not None  # ``proba`` is None for None or {}
        code = int(y)
        choice = classes.code_of(max(answer, key=answer.__getitem__))
        pred = predicted(proba) if choice is None else choice
        if classes.binary:
            p_pos = proba[1]
            loss = binary_loss(code, p_pos)
        else:
            # River's CrossEntropy adds nothing for a class the model's dict leaves out.
            p_pos = 0.0
            loss = class_loss(code, proba, label in answer)
        restart = self.baseline is not None and self._score_baseline(x, code, pred)
        model.learn_one(x, label)
        names = self.feature_names
        if names is not None:
            names.update(x)
        self.metrics.update(code, pred, loss, p_pos)
        self.window.add(code, pred, loss, p_pos)
        self.records_learned = n = self.records_learned + 1
        if n % self.curve.stride == 0:
            self._add_curve_points(n)
        if restart:
            self._restart_from_warm_start()
        return proba

    def step_with_prediction(self, x: dict[str, float], y: float, yhat: Proba) -> None:
        """Score probabilities given earlier (a late label), then learn the record now."""
        code = int(y)
        scored = score(code, yhat, binary=self.classes.binary)
        restart = False
        if self.baseline is not None:
            now = self.predict(x)  # the guard compares the model as it is now
            restart = self._score_baseline(x, code, predicted(now) if now else None)
        self.model.learn_one(x, self.classes.model_label(y))
        self._remember(x, scored)
        if restart:
            self._restart_from_warm_start()

    def _remember(self, x: dict[str, float], scored: tuple[int, int, float, float]) -> None:
        self._noted(x)
        self.metrics.update(*scored)
        self.window.add(*scored)
        self.records_learned += 1
        n = self.records_learned
        if n % self.curve.stride == 0:
            self._add_curve_points(n)

    def _add_curve_points(self, n: int) -> None:
        self.curve.add(n, self.window.right / self.window.len, self.metrics.accuracy())
        self.loss_curve.add(n, rolling_loss(self.window), self.metrics.loss.get())

    def loss_mark(self) -> LossMark:
        """Where a block's loss points start (take it before the block updates the state)."""
        return mark(self.records_learned, self.window, self.metrics.loss)

    def add_loss_points(self, start: LossMark, losses: NDArray[np.float64]) -> None:
        """The loss curve's points of a block (``losses``: one per record, as learned),
        as ``_remember`` adds them record by record."""
        curve = self.loss_curve
        curve.add_many(block_points(start, losses, curve.stride, self.window.size))

    def _score_baseline(self, x: dict[str, float], code: int, choice: int | None) -> bool:
        """Score A; with B's choice known, let the guard compare their 0/1 errors."""
        assert self.baseline_metrics is not None
        proba, base_choice, _ = self._answer(self.baseline, x)
        if proba is None or not finite(proba):
            return False
        self.baseline_metrics.update(
            *score(code, proba, binary=self.classes.binary, choice=base_choice)
        )
        self.baseline_scored += 1
        guard = self.guard
        if guard is None or choice is None:
            return False
        base = predicted(proba) if base_choice is None else base_choice
        # The guard compares mean absolute errors: of the 0/1 errors, the error rates.
        return guard.score(0.0, float(choice != code), float(base != code))

    def _taught(self, y: float) -> bool | str:
        """What the model learns for class code ``y`` (``ClassSpace.model_label``)."""
        return self.classes.model_label(y)

    # -- what is read of it -------------------------------------------------------------

    def _named(self, metrics: ClassMetrics) -> dict[str, Any]:
        labels = self.classes.labels
        out: dict[str, Any] = dict(metrics.values())
        out["confusion"] = {
            labels[true]: {labels[pred]: count for pred, count in row.items()}
            for true, row in metrics.confusion_counts().items()
        }
        return out

    def summary(self) -> dict[str, Any]:
        """Cumulative metrics by name, and ``confusion``: ``{true: {predicted: count}}``."""
        return self._named(self.metrics)

    def rolling_summary(self) -> dict[str, Any]:
        """The same metrics over the rolling window."""
        return self._named(self.window.metrics(self.classes.binary))

    def baseline_summary(self) -> dict[str, Any] | None:
        """The frozen baseline A's cumulative metrics (accuracy, log loss ...), if any."""
        if self.baseline_metrics is None:
            return None
        return self._named(self.baseline_metrics)

    def rolling_mae(self) -> float | None:
        """The 0/1 error rate over the window (the divergence guard's level); None if empty."""
        window = self.window
        return (window.len - window.right) / window.len if window.len else None

    @property
    def window_len(self) -> int:
        """How many records the rolling window holds."""
        return self.window.len

    def export_prequential(self, *, copy: bool = False) -> ClassPrequentialState:
        """The prequential state as one record (``copy``: a snapshot to put back later)."""
        if copy:
            return ClassPrequentialState(
                self.records_learned,
                self.metrics.copy(),
                self.window.copy(),
                self.curve.copy(),
                self.loss_curve.copy(),
            )
        return ClassPrequentialState(
            self.records_learned, self.metrics, self.window, self.curve, self.loss_curve
        )

    def import_prequential(self, state: ClassPrequentialState) -> None:
        """Take ``state`` (an export updated, or a snapshot: copied, so it can be put back
        again)."""
        if state.window.size != self.rolling_window:
            raise ValueError("the state's window is not the size of this learner's")
        self.records_learned = state.records_learned
        if state.metrics is not self.metrics:
            self.metrics = state.metrics.copy()
        if state.window is not self.window:
            self.window = state.window.copy()
        if state.curve is not self.curve:
            self.curve = state.curve.copy()
        if state.loss_curve is not self.loss_curve:
            self.loss_curve = state.loss_curve.copy()

    @property
    def model(self) -> Any:
        """The classifier learned."""
        return self._model

    @model.setter
    def model(self, model: Any) -> None:
        self._model = model

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("loss_curve", Curve())  # a learner pickled before it kept one
        self.__dict__.update(state)


def diverged(proba: Proba) -> float:
    """A number for the log line of a diverged prediction: its first non-finite value."""
    return next((p for p in proba if p - p != 0.0), math.nan)
