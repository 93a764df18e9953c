"""Per-record weights (pseudo-labels): learned by the final estimator, or sampled, never dropped.

River's ``Pipeline.learn_one`` hands a ``w`` only to the steps whose ``learn_one`` names it
and drops it silently for the others, so ``StandardScaler | KNNRegressor`` would learn a
pseudo-label at weight 0.2 at full weight. Here a pipeline's steps are learned one by one
instead: the transformers unweighted (as River learns them), the final estimator with the
weight. A model whose estimator cannot take a weight (no ``w`` parameter; ``ARFRegressor``
takes ``**kwargs`` but ignores a ``w`` in them) learns the record at full weight with
probability ``w``, from a seeded generator: on average at weight ``w``, reproducibly.
"""

from __future__ import annotations

import functools
import inspect
import random
import sys
from collections.abc import Callable
from typing import Any

from streamlearn.models.registry import final_estimator
from streamlearn.models.wrappers import RenamedRegressor

__all__ = ["WeightedLearning", "describe_weighting", "takes_weight"]


@functools.cache
def _named_w(learn_one: Callable[..., object]) -> bool:
    """Whether ``learn_one`` (a class's) has a parameter ``w`` (``**kwargs`` does not count)."""
    try:
        parameters = inspect.signature(learn_one).parameters
    except (TypeError, ValueError):
        return False
    parameter = parameters.get("w")
    return parameter is not None and parameter.kind is not inspect.Parameter.VAR_KEYWORD


def _estimator(model: Any) -> Any:
    """The estimator that learns last: a pipeline's final step, a renamed model's own model."""
    estimator = final_estimator(model)
    while isinstance(estimator, RenamedRegressor):
        estimator = final_estimator(estimator.regressor)
    return estimator


def takes_weight(model: Any) -> bool:
    """Whether ``model`` learns a record with a sample weight (its final estimator names ``w``).

    >>> from streamlearn.models.registry import build_model
    >>> takes_weight(build_model("StandardScaler | LinearRegression"))
    True
    >>> takes_weight(build_model("StandardScaler | KNNRegressor"))
    False
    """
    return _named_w(type(_estimator(model)).learn_one)


def describe_weighting(model: Any, weight: float) -> str:
    """One sentence: how a record of weight ``weight`` reaches ``model``.

    >>> from streamlearn.models.registry import build_model
    >>> print(describe_weighting(build_model("KNNRegressor"), 0.5))
    KNNRegressor cannot weight a record: each is learned at full weight with probability 0.5
    (a seeded draw), so at weight 0.5 on average
    """
    name = type(_estimator(model)).__name__
    if takes_weight(model):
        return f"{name} learns each record at its sample weight {weight:g}"
    if weight >= 1.0:
        return f"{name} cannot weight a record; at weight 1 each is learned in full"
    return (
        f"{name} cannot weight a record: each is learned at full weight with probability "
        f"{weight:g} (a seeded draw), so at weight {weight:g} on average"
    )


def _pipeline_steps(model: Any) -> list[Any] | None:
    """The steps of a plain River pipeline (transformers, then the estimator), else None.

    Unions, anomaly filters and learning during predict are left to River's own
    ``learn_one`` (with sampling), as are pipelines nested in a pipeline.
    """
    compose = sys.modules.get("river.compose")
    if compose is None or not isinstance(model, compose.Pipeline):
        return None
    if compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
        return None
    from river import base

    steps = list(model.steps.values())
    for step in steps[:-1]:
        if not isinstance(step, base.Transformer) or isinstance(
            step, compose.TransformerUnion | compose.Pipeline
        ):
            return None
    return steps


class WeightedLearning:
    """Learns one record with a weight ``w`` in ``(0, 1]`` (picklable: the generator is state).

    Parameters
    ----------
    seed
        Seed of the draws for models that cannot take a weight.

    Examples
    --------
    >>> from streamlearn.models.registry import build_model
    >>> model = build_model("StandardScaler | LinearRegression")
    >>> weighting = WeightedLearning()
    >>> weighting.learn(model, {"a": 1.0}, 2.0, 0.5)
    True
    >>> model["StandardScaler"].counts["a"], model["LinearRegression"].intercept
    (1, 0.01)
    """

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    def learn(self, model: Any, x: dict[str, float], y: float, w: float) -> bool:
        """Learn ``(x, y)`` at weight ``w``; returns whether the model learned it."""
        if not takes_weight(model):
            if w < 1.0 and self.rng.random() >= w:
                return False
            model.learn_one(x, y)
            return True
        steps = _pipeline_steps(model)
        if steps is None:
            model.learn_one(x, y, w=w)
            return True
        # River's Pipeline.learn_one step by step, the weight going to the estimator only.
        for step in steps[:-1]:
            if step._supervised:  # learns the features it transforms, with the target
                transformed = step.transform_one(x)
                step.learn_one(x, y)
                x = transformed
            else:
                step.learn_one(x)
                x = step.transform_one(x)
        steps[-1].learn_one(x, y, w=w)
        return True
