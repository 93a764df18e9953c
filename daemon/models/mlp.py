"""A small numpy multi-layer perceptron learned one record at a time, for transfer learning.

River 0.26 has no neural-network module, so the project carries its own: a dense regression
network whose layers can be warm-started from a batch model (scikit-learn or Keras) and partly
frozen, which is what the three modes of ``streamlearn.models.transfer`` need. When only the
output layer learns, it can be fitted by recursive least squares instead of SGD
(``head="rls"``, :mod:`streamlearn.models.rls`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from river import base

from streamlearn.models import activations
from streamlearn.models.activations import ACTIVATIONS
from streamlearn.models.mlp_params import check_head, checked_network
from streamlearn.models.network import DenseLayers
from streamlearn.models.rls import RLSHead

__all__ = ["MLPRegressor"]

FloatArray = npt.NDArray[np.float64]

# A checkpoint pickles an MLPRegressor's activation functions by module and name, and those
# of checkpoints already written name them here: these aliases keep such checkpoints loadable.
_relu, _relu_grad = activations.relu, activations.relu_grad
_tanh, _tanh_grad = activations.tanh, activations.tanh_grad
_logistic, _logistic_grad = activations.logistic, activations.logistic_grad
_identity, _identity_grad = activations.identity, activations.identity_grad


class MLPRegressor(DenseLayers, RLSHead, base.Regressor):
    """Dense neural network regressor learned one record at a time.

    The network is ``input -> hidden layers -> one linear output``. Each ``learn_one(x, y, w)``
    takes one gradient step on the squared error ``(yhat - y)^2 / 2``: the output gradient is
    ``(yhat - y)``, so a network with no hidden layer learns exactly like the textbook SGD update
    ``theta_j <- theta_j - lr * (yhat - y) * x_j`` (docs/design.md, "Terms: the seed"). The
    sample weight ``w`` scales the step. With ``head="rls"`` the output layer is fitted by
    recursive least squares instead (see :mod:`streamlearn.models.rls`).

    Weight matrices are stored like scikit-learn's: ``coefs_[i]`` has shape
    ``(fan_in, fan_out)`` and ``intercepts_[i]`` shape ``(fan_out,)``, so a trained
    ``sklearn.neural_network.MLPRegressor`` (or a Keras ``Dense`` stack) carries over as is.

    Parameters
    ----------
    hidden
        Number of units of each hidden layer; ``()`` gives a linear model.
    activation
        Hidden-layer activation: ``"relu"``, ``"tanh"``, ``"logistic"`` (alias ``"sigmoid"``) or
        ``"identity"`` (alias ``"linear"``). A tuple gives one per hidden layer (Keras allows
        them to differ).
    lr
        Learning rate of every trainable layer.
    seed
        Seed of the Glorot-uniform weight initialisation (biases start at 0, as in Keras).
        Unused when ``initial_coefs`` is given.
    trainable_layers
        ``None``: every layer learns (fine-tuning). ``K``: only the last ``K`` weight layers
        learn and the others stay frozen ("partial" training). ``1`` is feature extraction: the
        hidden layers are a frozen feature extractor and only the output layer learns, by the
        SGD update above on the last hidden activations (or by least squares: ``head``).
        ``0`` freezes everything.
    features
        Input feature names, in the order of the first layer's rows. If ``None``, they are
        taken from the first record learned, sorted by name so that the order of keys in a dict
        does not matter. Features outside this list are ignored; missing ones count as 0.
    initial_coefs
        Warm start: one weight matrix per layer, ``(fan_in, fan_out)``. Needs ``features``.
    initial_intercepts
        Warm start: one bias vector per layer (zeros if omitted).
    input_mean
        Frozen input centring carried over from the batch model (one value per feature).
    input_scale
        Frozen input scaling: the network sees ``(x - input_mean) / input_scale``.
    output_activation
        Output activation, ``"identity"`` for plain regression (Keras may use another).
    clip_gradient
        Bound on the absolute value of each gradient entry, as in River's linear models: it
        keeps a badly scaled stream from blowing the weights up in a few steps. Not used by the
        RLS head, whose step moves the prediction on the record at most to ``y``.
    head
        How the output layer learns: ``"sgd"`` (the gradient step of every other layer) or
        ``"rls"`` (recursive least squares on the last hidden activations). ``"rls"`` needs the
        output layer to be the only trainable one (``trainable_layers=1``, or no hidden layer)
        and a linear ``output_activation``; ``lr`` is then unused.
    rls_forgetting
        RLS forgetting factor ``lambda`` in ``(0, 1]``: a record seen ``t`` records ago counts
        ``lambda**t``, so the head remembers about ``1 / (1 - lambda)`` records and keeps
        tracking a drifting target (with ``1`` it averages over all records ever seen, and its
        steps shrink like ``1/t``). Forgetting would let ``P`` grow without bound in directions
        no record excites (a dead ReLU unit), so ``P``'s diagonal is kept at most
        ``1 / rls_delta`` by a symmetric diagonal rescaling: no weight is ever less certain than
        before the first record.
    rls_delta
        RLS regularisation: ``P`` starts at ``I / rls_delta``. Small values trust the first
        records quickly; large ones keep the head near its starting weights longer. It is in
        the units of the squared hidden activations.

    Attributes
    ----------
    coefs_
        The weight matrices, one per layer (empty until the feature order is known).
    intercepts_
        The bias vectors, one per layer.
    features_
        The input feature order in use (``None`` until known).
    rls_p_
        The RLS matrix ``P`` (``(n+1) x (n+1)``, the bias last), or ``None`` with ``head="sgd"``
        or before the feature order is known.
    n_skipped_steps_
        Steps skipped because they would have made a weight NaN or infinite (or because the
        record itself held NaN or infinity, or, for the RLS head, had a negative weight); the
        weights are then left as they were.

    Examples
    --------
    >>> model = MLPRegressor(hidden=(4,), lr=0.05, seed=1)
    >>> for _ in range(200):
    ...     for v in (-1.0, 0.0, 1.0):
    ...         model.learn_one({"x": v}, 2.0 * v + 1.0)
    >>> round(model.predict_one({"x": 0.5}), 1)
    2.0
    >>> [c.shape for c in model.coefs_]
    [(1, 4), (4, 1)]

    Warm start with only the output layer trainable: the first layer stays as given.

    >>> import numpy as np
    >>> head = MLPRegressor(
    ...     hidden=(2,), features=["x"], trainable_layers=1,
    ...     initial_coefs=[np.array([[1.0, -1.0]]), np.array([[1.0], [1.0]])],
    ... )
    >>> head.predict_one({"x": -3.0})   # relu(-3) + relu(3)
    3.0
    >>> head.learn_one({"x": -3.0}, 0.0)
    >>> head.coefs_[0].tolist(), head.coefs_[1].ravel().tolist()
    ([[1.0, -1.0]], [1.0, 0.91])

    The same network with a recursive-least-squares head: one record is (almost) fitted at
    once, the frozen layer stays as given.

    >>> rls = MLPRegressor(
    ...     hidden=(2,), features=["x"], trainable_layers=1, head="rls", rls_delta=0.01,
    ...     initial_coefs=[np.array([[1.0, -1.0]]), np.array([[1.0], [1.0]])],
    ... )
    >>> rls.predict_one({"x": -3.0})
    3.0
    >>> rls.learn_one({"x": -3.0}, 0.0)
    >>> round(rls.predict_one({"x": -3.0}), 3)
    0.003
    >>> rls.coefs_[0].tolist(), rls.rls_p_.shape
    ([[1.0, -1.0]], (3, 3))
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
        output_activation: str = "identity",
        clip_gradient: float = 1e12,
        head: str = "sgd",
        rls_forgetting: float = 0.999,
        rls_delta: float = 0.1,
    ) -> None:
        net = checked_network(hidden, activation, output_activation, lr, trainable_layers,
                              clip_gradient, features, initial_coefs, initial_intercepts,
                              input_mean, input_scale)  # fmt: skip
        check_head(head, rls_forgetting, rls_delta, trainable_layers, net.n_layers,
                   output_activation)  # fmt: skip
        net.check_size(head)

        self._keep_arguments(net, activation, lr, seed, trainable_layers)
        self.output_activation = output_activation
        self.clip_gradient = float(clip_gradient)
        self.head = head
        self.rls_forgetting = float(rls_forgetting)
        self.rls_delta = float(rls_delta)
        self.initial_coefs, self.initial_intercepts = net.coefs, net.intercepts
        self.input_mean, self.input_scale = net.input_mean, net.input_scale

        self._activations = [ACTIVATIONS[name] for name in (*net.names, output_activation)]
        self._rng = np.random.default_rng(seed)
        self.n_skipped_steps_ = 0
        self.features_: list[Hashable] | None = None
        self.coefs_: list[FloatArray] = []
        self.intercepts_: list[FloatArray] = []
        self.rls_p_: FloatArray | None = None
        if net.features is not None:
            self._build(list(net.features))

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"hidden": (8,), "activation": "tanh", "trainable_layers": 1, "seed": 3}
        yield {"hidden": (5, 3), "activation": ("logistic", "identity"), "lr": 0.001}
        rng = np.random.default_rng(0)
        yield {
            "hidden": (3,),
            "features": ["gallup", "ipsos"],
            "initial_coefs": [rng.normal(size=(2, 3)), rng.normal(size=(3, 1))],
            "initial_intercepts": [np.zeros(3), np.array([40.0])],
            "input_mean": [40.0, 40.0],
            "input_scale": [5.0, 5.0],
            "trainable_layers": 1,
        }
        yield {"hidden": (6,), "trainable_layers": 1, "head": "rls", "seed": 1}
        yield {
            "hidden": (3,),
            "activation": "identity",
            "trainable_layers": 1,
            "head": "rls",
            "rls_forgetting": 1.0,
            "rls_delta": 1.0,
        }

    # -- state -----------------------------------------------------------------------------

    def _build(self, features: Sequence[Hashable]) -> None:
        """Allocate the weights and every buffer the per-record steps reuse."""
        sizes = [len(features), *self.hidden, 1]
        self._start_layers(features, sizes, self.head)
        if self.head == "rls":
            self._build_rls(sizes[-2])
        self._build_scratch()

    #: The learn step's work buffers (``DenseLayers.SCRATCH``) and the RLS head's.
    SCRATCH = (*DenseLayers.SCRATCH, *RLSHead.RLS_SCRATCH)

    def _build_scratch(self) -> None:
        """Allocate the buffers ``learn_one`` reuses (``SCRATCH``), from the layers' shapes."""
        super()._build_scratch()
        if self.rls_p_ is not None:
            self._build_rls_scratch(self.rls_p_.shape[0])

    def _forward(self, x: dict[Hashable, Any], activity: list[FloatArray] | None) -> float:
        """The network's output for ``x`` (see ``DenseLayers._forward_layers``)."""
        return float(self._forward_layers(x, activity)[0])

    # -- River API -------------------------------------------------------------------------

    def predict_one(self, x: dict[Hashable, Any]) -> float:
        if self.features_ is None:
            return 0.0  # no layer exists before the feature order is known
        return self._forward(x, None)

    def learn_one(self, x: dict[Hashable, Any], y: float, w: float = 1.0) -> None:
        if self.features_ is None:
            if not x:
                return
            self._build(sorted(x, key=str))
        n_layers = len(self.coefs_)
        first = self._first_trainable
        if first >= n_layers or w == 0:
            return
        yhat = self._forward(x, self._activity)
        error = yhat - y
        if not math.isfinite(error):
            self.n_skipped_steps_ += 1
            return
        if self.rls_p_ is not None:
            self._rls_step(error, w)
            return
        delta = self._deltas[-1]
        delta[0] = error
        self._activations[-1][1](self._activity[-1], delta)
        self._backprop(self.lr * w)
