"""The dense layers of the numpy MLPs: initialisation, forward pass, one back-propagated step.

``MLPRegressor`` and ``MLPClassifier`` differ only in their output (a value, or class
probabilities) and in the error their output layer gets; this mixin holds the rest, so that
both learn with the same arithmetic.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from streamlearn.models.activations import Activation
from streamlearn.models.mlp_params import Network, check_size

__all__ = ["DenseLayers"]

FloatArray = npt.NDArray[np.float64]


class DenseLayers:
    """Weights ``coefs_[i]`` of shape ``(fan_in, fan_out)`` (scikit-learn's layout), biases
    ``intercepts_[i]``, and the work buffers of a step, as attributes of the network itself
    (a checkpoint pickles the network's own ``__dict__``). The attributes it reads are
    declared below; the network's ``__init__`` sets them.
    """

    hidden: tuple[int, ...]
    activation: str | tuple[str, ...]
    lr: float
    seed: int
    trainable_layers: int | None
    features: list[str] | None
    clip_gradient: float
    initial_coefs: list[FloatArray] | None
    initial_intercepts: list[FloatArray] | None
    input_mean: FloatArray | None
    input_scale: FloatArray | None
    n_skipped_steps_: int
    features_: list[Hashable] | None
    coefs_: list[FloatArray]
    intercepts_: list[FloatArray]
    _activations: list[Activation]
    _rng: np.random.Generator
    _index: dict[Hashable, int]
    _first_trainable: int
    _activity: list[FloatArray]
    _deltas: list[FloatArray]
    _spare_coefs: list[FloatArray]
    _spare_intercepts: list[FloatArray]

    #: The learn step's work buffers: scratch, not state. A checkpoint leaves them out (and a
    #: prediction writes none of them), so predicting never changes a pickled model.
    SCRATCH: tuple[str, ...] = ("_activity", "_deltas", "_spare_coefs", "_spare_intercepts")

    def _keep_arguments(
        self,
        net: Network,
        activation: str | Sequence[str],
        lr: float,
        seed: int,
        trainable_layers: int | None,
    ) -> None:
        """Keep the constructor arguments both networks share, as given (normalised copies),
        so that ``clone()`` returns the warm starting point, not the weights learned since."""
        self.hidden = net.hidden
        self.activation = activation if isinstance(activation, str) else net.names
        self.lr = float(lr)
        self.seed = seed
        self.trainable_layers = trainable_layers
        self.features = net.features

    def _start_layers(self, features: Sequence[Hashable], sizes: Sequence[int], head: str) -> None:
        """The warm start's layers (copied), else fresh ones for ``sizes``; then placed."""
        if self.initial_coefs is not None:
            self.coefs_ = [c.copy() for c in self.initial_coefs]
            self.intercepts_ = (
                [b.copy() for b in self.initial_intercepts]
                if self.initial_intercepts is not None
                else [np.zeros(c.shape[1]) for c in self.initial_coefs]
            )
        else:  # checked before a weight is allocated
            check_size(len(features), tuple(self.hidden), head, sizes[-1])
            self._glorot(sizes)
        self._place(features)

    def _glorot(self, sizes: Sequence[int]) -> None:
        """Fresh layers for ``sizes`` (input, hidden..., output): Glorot-uniform weights (the
        default of Keras and scikit-learn), zero biases."""
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            self.coefs_.append(self._rng.uniform(-bound, bound, size=(fan_in, fan_out)))
            self.intercepts_.append(np.zeros(fan_out))

    def _place(self, features: Sequence[Hashable]) -> None:
        """Fix the input order and which layers learn, once the layers exist."""
        self.features_ = list(features)
        self._index = {name: i for i, name in enumerate(features)}
        n_layers = len(self.coefs_)
        trainable = n_layers if self.trainable_layers is None else self.trainable_layers
        self._first_trainable = n_layers - trainable

    def _build_scratch(self) -> None:
        """Allocate the buffers ``learn_one`` reuses (``SCRATCH``), from the layers' shapes."""
        sizes = [self.coefs_[0].shape[0], *(c.shape[1] for c in self.coefs_)]
        self._activity = [np.zeros(n) for n in sizes]  # layer outputs; [0] is the scaled input
        self._deltas = [np.zeros(n) for n in sizes[1:]]
        # Spare matrices: a step is computed into them and committed only if every layer's result
        # is finite, so a bad step leaves no half-updated network behind.
        self._spare_coefs = [np.zeros_like(c) for c in self.coefs_]
        self._spare_intercepts = [np.zeros_like(b) for b in self.intercepts_]

    def __getstate__(self) -> dict[str, Any]:
        scratch = self.SCRATCH
        return {key: value for key, value in self.__dict__.items() if key not in scratch}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A checkpoint written before the buffers were left out holds them: rebuilt all the same.
        self.__dict__.update({k: v for k, v in state.items() if k not in self.SCRATCH})
        if self.features_ is not None:
            self._build_scratch()

    def _load_input(self, x: dict[Hashable, Any], buffer: FloatArray) -> FloatArray:
        buffer.fill(0.0)
        index = self._index
        for name, value in x.items():
            i = index.get(name)
            if i is not None:
                buffer[i] = value
        if self.input_mean is not None:
            buffer -= self.input_mean
        if self.input_scale is not None:
            buffer /= self.input_scale
        return buffer

    def _forward_layers(
        self, x: dict[Hashable, Any], activity: list[FloatArray] | None
    ) -> FloatArray:
        """The output layer's activations for ``x``, each layer's output written into
        ``activity`` (the learn step's buffers, which back-propagation reads) or, with None,
        into arrays made for this call: a prediction writes nothing the model holds. Same
        arithmetic both ways.
        """
        features = self.features_
        assert features is not None
        a = self._load_input(x, activity[0] if activity is not None else np.empty(len(features)))
        for i, (coef, bias) in enumerate(zip(self.coefs_, self.intercepts_, strict=True)):
            out = np.matmul(a, coef, out=activity[i + 1] if activity is not None else None)
            out += bias
            self._activations[i][0](out, out)
            a = out
        return a

    def _backprop(self, step: float) -> None:
        """One gradient step of rate ``step`` on the trainable layers, from the output error
        already in ``_deltas[-1]`` (the loss's gradient at the output layer's pre-activations)
        and the activations of the forward pass in ``_activity``. Committed only if every new
        weight is finite; otherwise ``n_skipped_steps_`` counts it and nothing changes.
        """
        n_layers = len(self.coefs_)
        first = self._first_trainable
        clip = self.clip_gradient
        activity, deltas = self._activity, self._deltas
        spare_coefs, spare_intercepts = self._spare_coefs, self._spare_intercepts

        delta = deltas[-1]
        for i in range(n_layers - 1, first - 1, -1):
            # Bounding the back-propagated error (River's clip_gradient) keeps a badly scaled
            # stream from making the weights grow exponentially, step after step.
            np.minimum(delta, clip, out=delta)  # two ufuncs: half the cost of np.clip's wrapper
            np.maximum(delta, -clip, out=delta)
            if i > first:
                # The error reaching layer i-1 goes through the weights *before* this step.
                below = deltas[i - 1]
                np.matmul(self.coefs_[i], delta, out=below)
                self._activations[i - 1][1](activity[i], below)
            delta *= -step  # not needed unscaled any more: scaling the vector saves a matrix pass
            new_coef, new_bias = spare_coefs[i], spare_intercepts[i]
            np.multiply.outer(activity[i], delta, out=new_coef)
            new_coef += self.coefs_[i]
            np.add(self.intercepts_[i], delta, out=new_bias)
            # A sum is finite only if every entry is: one cheap check per layer, no mask array.
            if not (math.isfinite(new_coef.sum()) and math.isfinite(new_bias.sum())):
                self.n_skipped_steps_ += 1
                return
            if i > first:
                delta = below
        # Copied rather than swapped so that coefs_[i] stays the same array object for a caller
        # holding on to it; a copy is cheap next to the step's matrix products.
        for i in range(first, n_layers):
            np.copyto(self.coefs_[i], spare_coefs[i])
            np.copyto(self.intercepts_[i], spare_intercepts[i])
