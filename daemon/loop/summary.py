"""The ``inspect --json`` object: what a checkpointed (or live) state says about the run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamlearn.classify.learner import ClassLearner
from streamlearn.keys.run import keyed_summary
from streamlearn.keys.tally import ClassTally, RegressionTally
from streamlearn.models.registry import final_estimator
from streamlearn.observe.tree_size import tree_size

from ..interfaces import InterceptModel, LearnerLike, StatePart, WeightedModel

#: The layout of the state dict ``Daemon.state()`` makes (checkpointed as it is).
STATE_FORMAT = 1


def inspect_state(state: Mapping[str, Any], generation: int | None = None) -> dict[str, Any]:
    """The ``inspect --json`` object of a state (a loaded checkpoint or a live daemon)."""
    learner: LearnerLike = state["learner"]
    counters = state.get("counters", {})
    out: dict[str, Any] = {
        "model": state.get("model_spec"),
        "records_seen": counters.get("records_seen", 0),
        "records_learned": learner.records_learned,
        "records_rejected": counters.get("records_rejected", 0),
        "records_unlabeled": counters.get("records_unlabeled", 0),
        "rejected_by_reason": counters.get("rejected_by_reason", {}),
        "predictions": counters.get("predictions", 0),
        "divergence_events": counters.get("divergence_events", 0),
        "position": state.get("source"),
        "metrics": learner.summary(),
        "rolling_metrics": learner.rolling_summary(),
        "rolling_window": learner.rolling_window,
        "settings": state.get("settings", {}),
        "checkpoint": {
            "generation": generation,
            "created": state.get("created"),
            "streamlearn": state.get("streamlearn"),
        },
    }
    out["task"] = learner.task
    if isinstance(learner, ClassLearner):  # the labels, by class code
        out["classes"] = learner.classes.labels
    if not learner.learns:  # --no-learn: its records were scored, none learned
        out["records_scored"], out["records_learned"] = learner.records_learned, 0
    baseline = learner.baseline_summary()
    if baseline is not None:
        out["baseline_metrics"] = baseline
    if learner.guard is not None:  # served_metrics, and which model serves
        out.update(learner.guard.summary())
    out.update(model_summary(learner.model))
    if isinstance(learner, RegressionTally | ClassTally):  # a keyed run: its keys
        out.pop("records_scored", None)
        out.update(keyed_summary(learner, state.get("keys")))
    for part in state.get("extensions", {}).values():
        if isinstance(part, StatePart):
            out.update(part.summary())
    return out


def model_summary(model: object) -> dict[str, Any]:
    """What ``inspect`` shows of a model: its weights and intercept (linear), a tree's size."""
    out: dict[str, Any] = {}
    final = final_estimator(model)
    weights = final.weights if isinstance(final, WeightedModel) else None
    per_class: dict[object, Mapping[object, float]] = (
        {c: w for c, w in weights.items() if isinstance(w, Mapping)}
        if isinstance(weights, Mapping)
        else {}
    )
    if per_class:
        # A multiclass linear model (River's SoftmaxRegression): the weights of each class.
        out["class_weights"] = {
            str(c): {str(k): float(v) for k, v in w.items()} for c, w in per_class.items()
        }
    elif isinstance(weights, Mapping):
        out["weights"] = {str(k): float(v) for k, v in weights.items()}
        intercept = final.intercept if isinstance(final, InterceptModel) else None
        if intercept is not None:
            out["intercept"] = float(intercept)
    size = tree_size(final)
    if size is not None:  # a River tree or forest: how big it has grown
        out["tree"] = size
    return out
