"""The numpy MLP as a classifier (model ``mlp_classifier``): a sigmoid or a softmax output.

The hidden layers, their initialisation, freezing and warm start are those of
``MLPRegressor`` (:mod:`streamlearn.models.network`); the output layer gives the logits of a
sigmoid (two classes, River's bool labels) or of a softmax (any labels, one output per class,
a column added when a class first arrives), and learns the cross-entropy gradient ``p - y``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from river import base
from river.base.typing import ClfTarget

from streamlearn.models.activations import ACTIVATIONS
from streamlearn.models.logistic import sigmoid
from streamlearn.models.mlp_params import check_size, checked_network
from streamlearn.models.network import DenseLayers
from streamlearn.models.softmax import softmax

__all__ = ["OUTPUTS", "MLPClassifier"]

FloatArray = npt.NDArray[np.float64]

#: The output layers: chosen from the first label (``"auto"``), or given.
OUTPUTS = ("auto", "sigmoid", "softmax")


def _resolve_output(
    output: str, classes: list[ClfTarget] | None, coefs: list[FloatArray] | None
) -> str | None:
    """The output layer these arguments fix (None: ``"auto"``, decided by the first label)."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(map(repr, OUTPUTS))}, got {output!r}")
    if classes is not None and (not classes or len(set(classes)) != len(classes)):
        raise ValueError(f"classes must be a non-empty list of distinct labels, got {classes!r}")
    if output == "sigmoid" and classes is not None:
        raise ValueError("output='sigmoid' learns bool labels (True is positive): give no classes")
    width = None if coefs is None else coefs[-1].shape[1]
    if output == "auto" and classes is None and width is not None:
        output = "sigmoid" if width == 1 else "softmax"
    elif output == "auto" and classes is not None:
        output = "softmax"
    if width is not None and output == "softmax" and classes is None:
        raise ValueError(
            f"a warm start with {width} outputs needs classes: the label of each output, in order"
        )
    return None if output == "auto" else output


class MLPClassifier(DenseLayers, base.Classifier):
    """Dense neural network classifier learned one record at a time.

    The network is ``input -> hidden layers -> logits``. With a **sigmoid** output (one unit,
    labels ``False``/``True``) ``p = sigmoid(logit)`` and ``predict_proba_one`` answers
    ``{False: 1 - p, True: p}``; with a **softmax** output (one unit per class, any labels)
    it answers ``{class: p_class}`` over the classes learned so far. Each ``learn_one(x, y, w)``
    takes one gradient step on the cross-entropy, whose gradient at the logits is ``p - y``
    (``y`` one-hot); the sample weight ``w`` scales it. With no hidden layer the sigmoid output
    is exactly ``logistic``'s update (up to the order of the sums).

    Parameters
    ----------
    hidden, activation, lr, seed, trainable_layers, features, initial_coefs, initial_intercepts,
    input_mean, input_scale, clip_gradient
        As for ``MLPRegressor``. The output layer of a warm start has one column (sigmoid) or
        one per class of ``classes`` (softmax).
    output
        ``"sigmoid"`` (binary: bool labels), ``"softmax"`` (any labels) or ``"auto"``: sigmoid
        when the first label learned is a bool (River's binary labels), softmax otherwise.
    classes
        The classes of a softmax output known in advance, in output order (a warm start's);
        others are added as they arrive, with zero weights.

    Attributes
    ----------
    output_
        The output in use: ``"sigmoid"``, ``"softmax"``, or None before ``"auto"`` saw a label.
    classes_
        The softmax output's classes, in output order.
    coefs_, intercepts_, features_, n_skipped_steps_
        As for ``MLPRegressor``.

    Examples
    --------
    >>> model = MLPClassifier(hidden=(4,), lr=0.1, seed=1)
    >>> model.predict_proba_one({"x": 1.0})   # nothing learned: no answer yet
    {}
    >>> for _ in range(300):
    ...     for v in (-2.0, -1.0, 1.0, 2.0):
    ...         model.learn_one({"x": v}, "pos" if v > 0 else "neg")
    >>> model.output_, model.classes_, [c.shape for c in model.coefs_]
    ('softmax', ['neg', 'pos'], [(1, 4), (4, 2)])
    >>> model.predict_one({"x": 1.5}), model.predict_one({"x": -1.5})
    ('pos', 'neg')

    Bool labels take the sigmoid output:

    >>> binary = MLPClassifier(hidden=(), seed=0)
    >>> binary.learn_one({"x": 1.0}, True)
    >>> binary.output_, sorted(binary.predict_proba_one({"x": 1.0}))
    ('sigmoid', [False, True])
    """

    def __init__(
        self,
        hidden: Sequence[int] = (50, 50),
        activation: str | Sequence[str] = "relu",
        lr: float = 0.01,
        seed: int = 0,
        trainable_layers: int | None = None,
        features: Sequence[str] | None = None,
        initial_coefs: Sequence[Any] | None = None,
        initial_intercepts: Sequence[Any] | None = None,
        input_mean: Sequence[float] | None = None,
        input_scale: Sequence[float] | None = None,
        clip_gradient: float = 1e12,
        output: str = "auto",
        classes: Sequence[ClfTarget] | None = None,
    ) -> None:
        net = checked_network(hidden, activation, "identity", lr, trainable_layers,
                              clip_gradient, features, initial_coefs, initial_intercepts,
                              input_mean, input_scale)  # fmt: skip
        classes = None if classes is None else list(classes)
        resolved = _resolve_output(output, classes, net.coefs)
        n_out = 1 if resolved == "sigmoid" else len(classes or ())
        net.check_size("sgd", n_out)

        self._keep_arguments(net, activation, lr, seed, trainable_layers)
        self.initial_coefs, self.initial_intercepts = net.coefs, net.intercepts
        self.input_mean, self.input_scale = net.input_mean, net.input_scale
        self.clip_gradient = float(clip_gradient)
        self.output = output
        self.classes = classes

        self._activations = [ACTIVATIONS[name] for name in (*net.names, "identity")]
        self._rng = np.random.default_rng(seed)
        self.n_skipped_steps_ = 0
        self.output_ = resolved
        self.classes_: list[ClfTarget] = list(classes or ())
        self._class_index = {label: i for i, label in enumerate(self.classes_)}
        self.features_: list[Hashable] | None = None
        self.coefs_: list[FloatArray] = []
        self.intercepts_: list[FloatArray] = []
        if net.features is not None and n_out > 0:
            self._build(net.features, n_out)

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"hidden": (8,), "activation": "tanh", "output": "softmax", "seed": 3}
        yield {"hidden": (5, 3), "activation": ("logistic", "identity"), "output": "sigmoid"}
        yield {"hidden": (6,), "trainable_layers": 1, "lr": 0.05, "seed": 1}

    @property
    def _multiclass(self) -> bool:
        return self.output != "sigmoid"

    # -- state -----------------------------------------------------------------------------

    def _build(self, features: Sequence[Hashable], n_out: int) -> None:
        """Allocate the weights and the step's buffers for ``n_out`` outputs."""
        self._start_layers(features, [len(features), *self.hidden, n_out], "sgd")
        self._build_scratch()

    def _add_class(self, label: ClfTarget) -> None:
        """A new softmax output, with zero weights and bias (its logit is 0 until it learns)."""
        if self.features_ is not None:
            if self.initial_coefs is None:
                check_size(len(self.features_), self.hidden, "sgd", len(self.classes_) + 1)
            last = self.coefs_[-1]
            self.coefs_[-1] = np.hstack([last, np.zeros((last.shape[0], 1))])
            self.intercepts_[-1] = np.append(self.intercepts_[-1], 0.0)
            self._build_scratch()
        self._class_index[label] = len(self.classes_)
        self.classes_.append(label)

    def _output_for(self, y: ClfTarget) -> str:
        """The output in use, decided by ``y`` under ``"auto"``; a non-bool for a sigmoid is
        refused (its truth value would be a silent guess)."""
        output = self.output_
        if output is None:
            output = self.output_ = "sigmoid" if isinstance(y, bool | np.bool_) else "softmax"
        if output == "sigmoid" and not isinstance(y, bool | np.bool_):
            raise ValueError(
                f"this network has a sigmoid output: it learns bool labels, got {y!r}; "
                "use output='softmax' for other labels"
            )
        return output

    # -- River API -------------------------------------------------------------------------

    def _proba(self, logits: FloatArray) -> list[float]:
        """The output's probabilities (sigmoid: of ``True``), NaN if a logit is not finite."""
        if self.output_ == "sigmoid":
            logit = float(logits[0])
            return [sigmoid(logit) if logit - logit == 0.0 else math.nan]
        return softmax(logits.tolist())

    def predict_proba_one(self, x: dict[Hashable, Any], **kwargs: Any) -> dict[ClfTarget, float]:
        if self.features_ is None:
            # No layer before the feature order is known. A binary classifier answers both
            # classes (River's contract, as its LogisticRegression's 0.5); others answer "no
            # prediction".
            return {False: 0.5, True: 0.5} if self.output_ == "sigmoid" else {}
        proba = self._proba(self._forward_layers(x, None))
        if self.output_ == "sigmoid":
            return {False: 1.0 - proba[0], True: proba[0]}
        return dict(zip(self.classes_, proba, strict=True))

    def learn_one(self, x: dict[Hashable, Any], y: ClfTarget, w: float = 1.0) -> None:
        output = self._output_for(y)
        if output == "softmax" and y not in self._class_index:
            self._add_class(y)
        if self.features_ is None:
            if not x:
                return
            self._build(sorted(x, key=str), len(self.classes_) if output == "softmax" else 1)
        if self._first_trainable >= len(self.coefs_) or w == 0:
            return
        proba = self._proba(self._forward_layers(x, self._activity))
        delta = self._deltas[-1]
        delta[:] = proba
        if output == "softmax":
            delta[self._class_index[y]] -= 1.0  # p - y, y one-hot
        elif y:
            delta[0] -= 1.0
        if not math.isfinite(delta.sum()):
            self.n_skipped_steps_ += 1
            return
        self._backprop(self.lr * w)
