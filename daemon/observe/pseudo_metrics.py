"""The effect of pseudo-labels as Prometheus series, read at scrape time from the side loop.

``streamlearn_pseudo_effect_mae{model, window}``: the prequential MAE on the true labels of
the model learning pseudo-labels (``model="with_pseudo_labels"``) and of its twin learning
only the true labels (``"without_pseudo_labels"``), cumulative and over the guard's window
(``window="cumulative"|"rolling"``); ``streamlearn_pseudo_effect_mae_difference{window}``,
with minus without (negative while pseudo-labels help); the guard's state and pauses. A
classifier's are ``streamlearn_pseudo_effect_accuracy{model, window}`` and
``streamlearn_pseudo_effect_accuracy_difference{window}`` (positive while they help).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from streamlearn.observe.scrape import ScrapeTimeCollector

__all__ = ["EFFECT_MODELS", "pseudo_effect_families", "register_pseudo_metrics"]

#: The ``model`` label values of ``streamlearn_pseudo_effect_mae`` and the summary keys.
EFFECT_MODELS = (("with_pseudo_labels", "mae_with"), ("without_pseudo_labels", "mae_without"))
_WINDOWS = (("cumulative", ""), ("rolling", "rolling_"))
#: What the effect of a regressor's and of a classifier's pseudo-labels is measured in.
_MEASURES = {
    "mae": (
        "Prequential MAE on the true labels of the model learning pseudo-labels and of its "
        "twin learning only the true labels (target units).",
        "MAE with pseudo-labels minus without (negative while they help).",
    ),
    "accuracy": (
        "Prequential accuracy on the true labels of the classifier learning pseudo-labels "
        "and of its twin learning only the true labels.",
        "Accuracy with pseudo-labels minus without (positive while they help).",
    ),
}


def _value(effect: Mapping[str, Any], key: str) -> float:
    value = effect.get(key)
    return math.nan if value is None else float(value)


def pseudo_effect_families(effect: Mapping[str, Any]) -> list[Metric]:
    """The series of one ``pseudo_labels.effect`` summary (``PseudoEffect.summary``; a
    classifier's, ``ClassPseudoEffect.summary``, gives the accuracy series instead of MAE).

    >>> from streamlearn.labels.effect import PseudoEffect
    >>> families = pseudo_effect_families(PseudoEffect().summary())
    >>> for sample in families[0].samples:
    ...     print(sample.labels["model"], sample.labels["window"], sample.value)
    with_pseudo_labels cumulative nan
    with_pseudo_labels rolling nan
    without_pseudo_labels cumulative nan
    without_pseudo_labels rolling nan
    >>> for family in families[1:]:
    ...     print(family.name)
    streamlearn_pseudo_effect_mae_difference
    streamlearn_pseudo_guard_paused
    streamlearn_pseudo_guard_pauses
    """
    measure = "accuracy" if effect.get("compares") == "accuracy" else "mae"
    help_values, help_difference = _MEASURES[measure]
    values = GaugeMetricFamily(
        f"streamlearn_pseudo_effect_{measure}", help_values, labels=["model", "window"]
    )
    for model, key in EFFECT_MODELS:
        for window, prefix in _WINDOWS:
            values.add_metric([model, window], _value(effect, prefix + key.replace("mae", measure)))
    difference = GaugeMetricFamily(
        f"streamlearn_pseudo_effect_{measure}_difference", help_difference, labels=["window"]
    )
    for window, prefix in _WINDOWS:
        difference.add_metric([window], _value(effect, f"{prefix}{measure}_difference"))
    guard = effect.get("guard", {})
    paused = GaugeMetricFamily(
        "streamlearn_pseudo_guard_paused",
        "1 while the guard pauses pseudo-labeling (they hurt: the twin serves and learns on).",
        value=1.0 if guard.get("state") == "paused" else 0.0,
    )
    pauses = CounterMetricFamily(
        "streamlearn_pseudo_guard_pauses",
        "Times the guard paused pseudo-labeling (over the state's life).",
        value=float(guard.get("pauses", 0)),
    )
    return [values, difference, paused, pauses]


def register_pseudo_metrics(
    registry: CollectorRegistry, read: Callable[[], Mapping[str, Any] | None]
) -> None:
    """Export ``read()`` (a ``pseudo_labels.effect`` summary, None: nothing) at every scrape."""

    def produce() -> list[Metric]:
        effect = read()
        return pseudo_effect_families(effect) if effect is not None else []

    registry.register(ScrapeTimeCollector("streamlearn_pseudo_effect", produce))
