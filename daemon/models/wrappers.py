"""Regressors that wrap another: one frozen (never learns), one fed renamed features."""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterator
from typing import Any

from river import base

__all__ = ["FrozenRegressor", "RenamedRegressor"]


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
