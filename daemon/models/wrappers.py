"""Models that wrap another: frozen (never learns), or fed renamed features (and labels)."""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterator
from typing import Any

from river import base
from river.base.typing import ClfTarget

__all__ = ["FrozenClassifier", "FrozenRegressor", "RenamedClassifier", "RenamedRegressor"]


class FrozenRegressor(base.Regressor):
    """Predicts with a regressor as it is; ``learn_one`` does nothing.

    ``clone()`` returns a copy of the frozen model itself: its state *is* its parameters.

    Parameters
    ----------
    regressor
        The model to freeze.

    Examples
    --------
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> frozen = FrozenRegressor(SGDRegressor(initial_weights={"x": 2.0}))
    >>> frozen.learn_one({"x": 1.0}, 10.0)
    >>> frozen.predict_one({"x": 1.0})
    2.0
    """

    def __init__(self, regressor: base.Regressor) -> None:
        self.regressor = regressor

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        from streamlearn.models.sgd import SGDRegressor

        yield {"regressor": SGDRegressor(initial_weights={"gallup": 1.0})}

    def clone(
        self, new_params: dict[str, Any] | None = None, include_attributes: bool = False
    ) -> FrozenRegressor:
        if new_params:
            return super().clone(new_params, include_attributes)
        return copy.deepcopy(self)

    def learn_one(self, x: dict[Hashable, Any], y: float, w: float = 1.0) -> None:
        return None

    def predict_one(self, x: dict[Hashable, Any]) -> float:
        return float(self.regressor.predict_one(x))


class RenamedRegressor(base.Regressor):
    """A regressor fed with features renamed by ``mapping`` (stream name -> the model's name).

    Unlike River's ``compose.Renamer``, it never changes the caller's dict.

    Parameters
    ----------
    regressor
        The model that expects the renamed features.
    mapping
        Stream feature name -> the name ``regressor`` knows; other names pass unchanged.

    Examples
    --------
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> model = RenamedRegressor(SGDRegressor(initial_weights={"x": 2.0}), {"temp": "x"})
    >>> model.predict_one({"temp": 1.5})
    3.0
    """

    def __init__(self, regressor: base.Regressor, mapping: dict[str, str]) -> None:
        self.regressor = regressor
        self.mapping = mapping

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        from streamlearn.models.sgd import SGDRegressor

        yield {"regressor": SGDRegressor(), "mapping": {"gallup": "g"}}

    def _rename(self, x: dict[Hashable, Any]) -> dict[Hashable, Any]:
        mapping = self.mapping
        return {mapping.get(k, k) if isinstance(k, str) else k: v for k, v in x.items()}

    def learn_one(self, x: dict[Hashable, Any], y: float, w: float = 1.0) -> None:
        if w == 1.0:
            self.regressor.learn_one(self._rename(x), y)
        else:
            self.regressor.learn_one(self._rename(x), y, w=w)  # type: ignore[call-arg]

    def predict_one(self, x: dict[Hashable, Any]) -> float:
        return float(self.regressor.predict_one(self._rename(x)))


class FrozenClassifier(base.Classifier):
    """Answers a classifier's probabilities as they are; ``learn_one`` does nothing.

    The classifier counterpart of ``FrozenRegressor``: the warm start's baseline A.

    Parameters
    ----------
    classifier
        The model to freeze.

    Examples
    --------
    >>> from streamlearn.models.logistic import LogisticRegression
    >>> frozen = FrozenClassifier(LogisticRegression(initial_weights={"x": 2.0}))
    >>> frozen.learn_one({"x": 1.0}, False)
    >>> round(frozen.predict_proba_one({"x": 1.0})[True], 6)   # sigmoid(2)
    0.880797
    """

    def __init__(self, classifier: base.Classifier) -> None:
        self.classifier = classifier

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        from streamlearn.models.logistic import LogisticRegression

        yield {"classifier": LogisticRegression(initial_weights={"gallup": 1.0})}

    @property
    def _multiclass(self) -> bool:
        return self.classifier._multiclass

    def clone(
        self, new_params: dict[str, Any] | None = None, include_attributes: bool = False
    ) -> FrozenClassifier:
        if new_params:
            return super().clone(new_params, include_attributes)
        return copy.deepcopy(self)

    def learn_one(self, x: dict[Hashable, Any], y: ClfTarget, w: float = 1.0) -> None:
        return None

    def predict_proba_one(self, x: dict[Hashable, Any], **kwargs: Any) -> dict[ClfTarget, float]:
        return self.classifier.predict_proba_one(x)


class RenamedClassifier(base.Classifier):
    """A classifier fed renamed features and labels: the stream's names mapped onto its own.

    Parameters
    ----------
    classifier
        The model, which knows its own feature names and class labels.
    mapping
        Stream feature name -> the model's feature name; others pass unchanged.
    labels
        Stream label -> the model's label (e.g. ``"2"`` -> ``2`` for a model that learned
        integers); the model's answers are mapped back. Others pass unchanged.

    Examples
    --------
    >>> from river import tree
    >>> model = tree.HoeffdingTreeClassifier()
    >>> for v, label in [(0.0, 0), (1.0, 1), (0.1, 0), (0.9, 1)]:
    ...     model.learn_one({"x": v}, label)
    >>> renamed = RenamedClassifier(model, {"temp": "x"}, {"0": 0, "1": 1})
    >>> sorted(renamed.predict_proba_one({"temp": 0.95}))
    ['0', '1']
    >>> renamed.learn_one({"temp": 0.8}, "1")
    >>> model.summary["n_nodes"], sorted(model.classes)
    (1, [0, 1])
    """

    def __init__(
        self,
        classifier: base.Classifier,
        mapping: dict[str, str] | None = None,
        labels: dict[ClfTarget, ClfTarget] | None = None,
    ) -> None:
        self.classifier = classifier
        self.mapping = dict(mapping or {})
        self.labels = dict(labels or {})
        self._answers = {model: stream for stream, model in self.labels.items()}

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        from river import tree

        yield {"classifier": tree.HoeffdingTreeClassifier(), "mapping": {"gallup": "g"}}

    @property
    def _multiclass(self) -> bool:
        return self.classifier._multiclass

    def _rename(self, x: dict[Hashable, Any]) -> dict[Hashable, Any]:
        mapping = self.mapping
        if not mapping:
            return x
        return {mapping.get(k, k) if isinstance(k, str) else k: v for k, v in x.items()}

    def learn_one(self, x: dict[Hashable, Any], y: ClfTarget, w: float = 1.0) -> None:
        label = self.labels.get(y, y)
        if w == 1.0:
            self.classifier.learn_one(self._rename(x), label)
        else:
            self.classifier.learn_one(self._rename(x), label, w=w)  # type: ignore[call-arg]

    def predict_proba_one(self, x: dict[Hashable, Any], **kwargs: Any) -> dict[ClfTarget, float]:
        answers = self._answers
        proba = self.classifier.predict_proba_one(self._rename(x))
        return {answers.get(label, label): p for label, p in proba.items()}
