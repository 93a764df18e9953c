"""Model A of transfer learning, reduced to what building the online model B needs.

A batch model trained elsewhere (scikit-learn, Keras, River, a streamlearn checkpoint) becomes a
:class:`BatchModel`: its layers as plain numpy arrays, its activations and input names, or, for
a River model with no layers to reuse, the model itself; for a classifier also its classes
and how its output layer turns logits into probabilities.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from river.base.typing import ClfTarget

from streamlearn.models.activations import ACTIVATIONS

__all__ = ["BatchModel", "FloatArray", "Kind", "Output", "TransferError"]

FloatArray = npt.NDArray[np.float64]
Kind = Literal["mlp", "linear", "river"]
#: How a classifier A's last layer (its logits) becomes probabilities: one sigmoid unit (the
#: positive class, ``classes[1]``), a softmax over one unit per class, or one sigmoid per
#: class normalised to sum 1 (scikit-learn's one-vs-rest, e.g. a multiclass ``SGDClassifier``).
Output = Literal["sigmoid", "softmax", "ovr"]


class TransferError(ValueError):
    """Model A cannot be loaded or cannot be used the way it was asked; the message says why."""


@dataclass(frozen=True, eq=False)
class BatchModel:
    """A batch-trained model A, reduced to what transfer learning needs.

    Attributes
    ----------
    kind
        ``"mlp"`` (dense layers: scikit-learn ``MLPRegressor``, Keras ``Sequential``, a
        streamlearn ``MLPRegressor``), ``"linear"`` (one linear layer: scikit-learn linear
        models, the streamlearn ``SGDRegressor``) or ``"river"`` (any other River regressor or
        pipeline, used as a whole).
    origin
        What A was, for logs: e.g. ``"sklearn MLPRegressor"``.
    feature_names
        A's input names in the order of its first layer, or ``None`` when A was trained without
        names (Keras, scikit-learn on a bare array): see ``input_names``.
    n_features
        Number of inputs (``None`` for a River model, which takes any dict).
    coefs, intercepts
        One ``(fan_in, fan_out)`` matrix and one bias vector per layer (``mlp`` and ``linear``).
    activations
        One activation name per layer; the last is the output's.
    input_mean, input_scale
        A's fixed input standardisation (a scikit-learn ``StandardScaler`` in a pipeline).
    river_model
        The River model itself, for kind ``"river"``.
    learning_rate
        The step size A's own training ended with, when it kept one (scikit-learn's
        ``learning_rate_init`` for Adam, the current rate of its SGD solvers, a Keras
        optimizer's ``learning_rate``, a streamlearn model's ``lr``); ``None`` for a
        closed-form fit (``LinearRegression``, L-BFGS). It sets B's learning rate when
        none is given (:func:`streamlearn.models.transfer.suited_lr`).
    output
        A classifier's output (``Output``; its last activation is then ``identity``: the
        logits); None for a regressor and for a River model.
    classes
        A classifier's class labels as text, in output order (a sigmoid output's
        ``(negative, positive)``); None for a regressor, and for a classifier whose classes are
        not written in it (a Keras file: ``--classes`` names them; a River binary classifier,
        which learns ``False``/``True``).
    model_labels
        A River classifier's own labels (``int``, ``bool``, ``str`` ...), in the order of
        ``classes``: what it learns and answers.
    """

    kind: Kind
    origin: str
    feature_names: tuple[str, ...] | None
    n_features: int | None
    coefs: tuple[FloatArray, ...] = ()
    intercepts: tuple[FloatArray, ...] = ()
    activations: tuple[str, ...] = ()
    input_mean: FloatArray | None = None
    input_scale: FloatArray | None = None
    river_model: Any = field(default=None, repr=False)
    learning_rate: float | None = None
    output: Output | None = None
    classes: tuple[str, ...] | None = None
    model_labels: tuple[ClfTarget, ...] | None = None

    @classmethod
    def linear(
        cls,
        origin: str,
        names: tuple[str, ...] | None,
        coef: FloatArray,
        intercept: FloatArray,
        rate: float | None,
        output: Output | None = None,
        classes: tuple[str, ...] | None = None,
        scaling: tuple[FloatArray | None, FloatArray | None] = (None, None),
    ) -> BatchModel:
        """A linear A: one layer of weights ``coef`` (features x outputs) and ``intercept``,
        its output the score (a regressor) or the logits (a classifier's ``output``)."""
        return cls(
            kind="linear",
            origin=origin,
            feature_names=names,
            n_features=coef.shape[0],
            coefs=(coef,),
            intercepts=(intercept,),
            activations=("identity",),
            input_mean=scaling[0],
            input_scale=scaling[1],
            learning_rate=rate,
            output=output,
            classes=classes,
        )

    @property
    def is_classifier(self) -> bool:
        """Whether A predicts classes (``output`` or a River classifier), not a number."""
        if self.kind == "river":
            from river import base

            from streamlearn.models.registry import final_estimator

            return isinstance(final_estimator(self.river_model), base.Classifier)
        return self.output is not None

    @property
    def input_names(self) -> tuple[str, ...]:
        """A's input names; nameless inputs are called ``x0, x1, ...`` as scikit-learn does."""
        if self.feature_names is not None:
            return self.feature_names
        if self.n_features is None:
            raise TransferError(f"{self.origin} takes any features: it has no fixed input names")
        return tuple(f"x{i}" for i in range(self.n_features))

    @property
    def n_layers(self) -> int:
        """Number of weight layers (0 for a River model)."""
        return len(self.coefs)

    def describe(self) -> str:
        """One line for logs, e.g. ``sklearn MLPRegressor: 1 -> 50 relu -> 1 identity``."""
        if self.kind == "river":
            return f"{self.origin}: {self.river_model!s}".replace("\n", " ")
        shape = " -> ".join(
            [str(self.n_features)]
            + [
                f"{coef.shape[1]} {act}"
                for coef, act in zip(self.coefs, self.activations, strict=True)
            ]
        )
        names = ", ".join(self.feature_names) if self.feature_names else "unnamed (positional)"
        scaled = "; standardised inputs" if self.input_scale is not None else ""
        output = f" -> {self.output}" if self.output is not None else ""
        return f"{self.origin}: {shape}{output}; features {names}{scaled}"

    def predict_one(self, x: Mapping[Hashable, Any]) -> float:
        """A's prediction for one record keyed by ``input_names`` (missing features count as 0).

        For a layered classifier: its first logit, not a probability.
        """
        if self.kind == "river":
            return float(self.river_model.predict_one(dict(x)))
        a = np.array([float(x.get(name, 0.0)) for name in self.input_names], dtype=np.float64)
        if self.input_mean is not None:
            a = a - self.input_mean
        if self.input_scale is not None:
            a = a / self.input_scale
        for coef, bias, act in zip(self.coefs, self.intercepts, self.activations, strict=True):
            z = a @ coef + bias
            ACTIVATIONS[act][0](z, z)
            a = z
        return float(a[0])
