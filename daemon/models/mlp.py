"""A small numpy multi-layer perceptron learned one record at a time, for transfer learning.

River 0.26 has no neural-network module, so the project carries its own: a dense regression
network whose layers can be warm-started from a batch model (scikit-learn or Keras) and partly
frozen, which is what the seed's three transfer modes need. When only the output layer learns,
it can be fitted by recursive least squares instead of SGD (``head="rls"``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from river import base

__all__ = ["ACTIVATIONS", "HEADS", "MLPRegressor"]

FloatArray = npt.NDArray[np.float64]

# Each activation is computed in place into a preallocated buffer; its derivative is written in
# terms of the activation's *output*, which the forward pass has already stored, so backprop never
# keeps the pre-activations around.


def _relu(z: FloatArray, out: FloatArray) -> None:
    np.maximum(z, 0.0, out=out)


def _relu_grad(a: FloatArray, delta: FloatArray) -> None:
    # a > 0 exactly where z > 0, the same subgradient choice (0 at z == 0) as scikit-learn.
    delta[a <= 0.0] = 0.0


def _tanh(z: FloatArray, out: FloatArray) -> None:
    np.tanh(z, out=out)


def _tanh_grad(a: FloatArray, delta: FloatArray) -> None:
    delta *= 1.0 - a * a


def _logistic(z: FloatArray, out: FloatArray) -> None:
    # 1 / (1 + e^-z) written through tanh: the same value, but no overflow warning for large |z|.
    np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5


def _logistic_grad(a: FloatArray, delta: FloatArray) -> None:
    delta *= a * (1.0 - a)


def _identity(z: FloatArray, out: FloatArray) -> None:
    out[...] = z


def _identity_grad(a: FloatArray, delta: FloatArray) -> None:
    return None


_Activation = tuple[
    Callable[[FloatArray, FloatArray], None], Callable[[FloatArray, FloatArray], None]
]

# The names scikit-learn and Keras use for the same functions, so a batch model's own spelling
# carries over unchanged.
ACTIVATIONS: dict[str, _Activation] = {
    "relu": (_relu, _relu_grad),
    "tanh": (_tanh, _tanh_grad),
    "logistic": (_logistic, _logistic_grad),
    "sigmoid": (_logistic, _logistic_grad),
    "identity": (_identity, _identity_grad),
    "linear": (_identity, _identity_grad),
}


# How the output layer learns: by the same SGD step as the other layers, or by recursive least
# squares on the (frozen) last hidden activations.
HEADS = ("sgd", "rls")

# Output activations under which the network's output is linear in the output layer's weights,
# which is what least squares needs.
_LINEAR_OUTPUTS = frozenset({"identity", "linear"})


def _as_float_arrays(
    arrays: Iterable[Any], name: str, ndim: int, n: int | None = None
) -> list[FloatArray]:
    out = [np.array(a, dtype=np.float64, copy=True) for a in arrays]
    if n is not None and len(out) != n:
        raise ValueError(f"{name} must hold {n} arrays (one per weight layer), got {len(out)}")
    for i, arr in enumerate(out):
        if arr.ndim != ndim:
            raise ValueError(f"{name}[{i}] must be a {ndim}-d array, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}[{i}] holds NaN or infinite values")
    return out


def _as_vector(values: Any, name: str, n: int) -> FloatArray:
    arr = np.array(values, dtype=np.float64, copy=True).reshape(-1)
    if arr.shape != (n,):
        raise ValueError(f"{name} must hold one value per feature ({n}), got {arr.size}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


class MLPRegressor(base.Regressor):
    """Dense neural network regressor learned one record at a time.

    The network is ``input -> hidden layers -> one linear output``. Each ``learn_one(x, y, w)``
    takes one gradient step on the squared error ``(yhat - y)^2 / 2``: the output gradient is
    ``(yhat - y)``, so a network with no hidden layer learns exactly like the seed's update
    ``theta_j <- theta_j - lr * (yhat - y) * x_j``. The sample weight ``w`` scales the step.

    With ``head="rls"`` and only the output layer trainable (feature extraction), the output
    layer is instead fitted by recursive least squares on the last hidden activations ``h``
    (plus a constant 1 for the bias). Hidden ReLU features are strongly correlated, so a plain
    gradient step on them is ill-conditioned and slow; RLS is invariant to that conditioning.
    Per record, with ``phi = [h, 1]``, ``theta`` the output weights and bias, and ``lambda`` the
    forgetting factor::

        u     = P phi
        d     = lambda / w + phi' u
        theta = theta - u (yhat - y) / d
        P     = (P - u u' / d) / lambda      (then bounded: see ``rls_forgetting``)

    ``theta`` starts at the given output layer (so a warm-started network predicts exactly as
    given until it learns) and
    ``P = I / rls_delta``: with ``rls_forgetting=1`` this is exactly ridge regression of ``y``
    on ``phi`` pulled towards the starting weights with strength ``rls_delta``. It costs one
    ``(n+1) x (n+1)`` rank-one update per record (n hidden units), about ``3 (n+1)^2`` flops.

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
        hidden layers are a frozen feature extractor and only the output layer learns, with the
        seed's linear update on the last hidden activations (or by least squares: ``head``).
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
        hidden = tuple(hidden)
        if not all(isinstance(h, int | np.integer) and h > 0 for h in hidden):
            raise ValueError(f"hidden must be positive layer sizes, e.g. (50, 50); got {hidden!r}")
        hidden = tuple(int(h) for h in hidden)
        n_layers = len(hidden) + 1
        names = (activation,) * len(hidden) if isinstance(activation, str) else tuple(activation)
        if len(names) != len(hidden):
            raise ValueError(
                f"activation needs one name per hidden layer ({len(hidden)}), got {len(names)}"
            )
        for name in (*names, output_activation):
            if name not in ACTIVATIONS:
                raise ValueError(
                    f"unknown activation {name!r}; use one of {', '.join(sorted(ACTIVATIONS))}"
                )
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        if trainable_layers is not None and not (
            isinstance(trainable_layers, int) and 0 <= trainable_layers <= n_layers
        ):
            raise ValueError(
                f"trainable_layers must be None (all) or between 0 and {n_layers} "
                f"(this network has {n_layers} weight layers), got {trainable_layers!r}"
            )
        if not (isinstance(clip_gradient, int | float) and clip_gradient > 0):
            raise ValueError(f"clip_gradient must be positive, got {clip_gradient!r}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(map(repr, HEADS))}, got {head!r}")
        if not (isinstance(rls_forgetting, int | float) and 0 < rls_forgetting <= 1):
            raise ValueError(
                f"rls_forgetting must be in (0, 1] (1 = remember every record), "
                f"got {rls_forgetting!r}"
            )
        if not (isinstance(rls_delta, int | float) and math.isfinite(rls_delta) and rls_delta > 0):
            raise ValueError(f"rls_delta must be a positive finite number, got {rls_delta!r}")
        if head == "rls":
            n_trainable = n_layers if trainable_layers is None else trainable_layers
            if n_trainable != 1:
                raise ValueError(
                    "head='rls' fits the output layer on frozen hidden features, so it needs "
                    f"exactly one trainable layer (trainable_layers=1); this network would train "
                    f"{n_trainable} of its {n_layers}"
                )
            if output_activation not in _LINEAR_OUTPUTS:
                raise ValueError(
                    "head='rls' needs a linear output (output_activation='identity'), got "
                    f"{output_activation!r}; use head='sgd'"
                )
        if features is not None:
            features = list(features)
            if len(set(features)) != len(features) or not features:
                raise ValueError("features must be a non-empty list of distinct names")

        # The constructor arguments are kept as given (normalised copies) so that clone() returns
        # the warm starting point, not the weights learned since.
        self.hidden = hidden
        self.activation = activation if isinstance(activation, str) else names
        self.lr = float(lr)
        self.seed = seed
        self.trainable_layers = trainable_layers
        self.features = features
        self.output_activation = output_activation
        self.clip_gradient = float(clip_gradient)
        self.head = head
        self.rls_forgetting = float(rls_forgetting)
        self.rls_delta = float(rls_delta)
        self.initial_coefs = (
            None
            if initial_coefs is None
            else _as_float_arrays(initial_coefs, "initial_coefs", 2, n_layers)
        )
        self.initial_intercepts = (
            None
            if initial_intercepts is None
            else _as_float_arrays(initial_intercepts, "initial_intercepts", 1, n_layers)
        )
        if self.initial_intercepts is not None and self.initial_coefs is None:
            raise ValueError("initial_intercepts needs initial_coefs")
        if self.initial_coefs is not None and features is None:
            raise ValueError(
                "initial_coefs needs features: the names of the first layer's inputs, in order"
            )
        n_in = None if features is None else len(features)
        if n_in is None and (input_mean is not None or input_scale is not None):
            raise ValueError("input_mean and input_scale need features (their order)")
        self.input_mean = (
            None
            if input_mean is None or n_in is None
            else _as_vector(input_mean, "input_mean", n_in)
        )
        self.input_scale = (
            None
            if input_scale is None or n_in is None
            else _as_vector(input_scale, "input_scale", n_in)
        )
        if self.input_scale is not None and (self.input_scale == 0).any():
            raise ValueError("input_scale must not hold zeros")
        if self.initial_coefs is not None:
            assert n_in is not None  # checked above: initial_coefs needs features
            fan_in, fan_out = [n_in, *hidden], [*hidden, 1]
            for i, coef in enumerate(self.initial_coefs):
                if coef.shape != (fan_in[i], fan_out[i]):
                    raise ValueError(
                        f"initial_coefs[{i}] has shape {coef.shape}, expected "
                        f"{(fan_in[i], fan_out[i])} for {n_in} features and hidden={hidden}"
                    )
            for i, bias in enumerate(self.initial_intercepts or []):
                if bias.shape != (fan_out[i],):
                    raise ValueError(
                        f"initial_intercepts[{i}] has shape {bias.shape}, expected ({fan_out[i]},)"
                    )

        self._activations = [ACTIVATIONS[name] for name in (*names, output_activation)]
        self._rng = np.random.default_rng(seed)
        self.n_skipped_steps_ = 0
        self.features_: list[Hashable] | None = None
        self.coefs_: list[FloatArray] = []
        self.intercepts_: list[FloatArray] = []
        self.rls_p_: FloatArray | None = None
        if features is not None:
            self._build(list(features))

    @classmethod
    def _unit_test_params(cls) -> Any:
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
        n_layers = len(sizes) - 1
        if self.initial_coefs is not None:
            self.coefs_ = [c.copy() for c in self.initial_coefs]
            self.intercepts_ = (
                [b.copy() for b in self.initial_intercepts]
                if self.initial_intercepts is not None
                else [np.zeros(n) for n in sizes[1:]]
            )
        else:
            self.coefs_, self.intercepts_ = [], []
            for fan_in, fan_out in itertools.pairwise(sizes):
                # Glorot uniform, the default of Keras and scikit-learn.
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                self.coefs_.append(self._rng.uniform(-bound, bound, size=(fan_in, fan_out)))
                self.intercepts_.append(np.zeros(fan_out))
        self.features_ = list(features)
        self._index: dict[Hashable, int] = {name: i for i, name in enumerate(features)}
        self._activity = [np.zeros(n) for n in sizes]  # layer outputs; [0] is the scaled input
        self._deltas = [np.zeros(n) for n in sizes[1:]]
        # Spare matrices: a step is computed into them and committed only if every layer's result
        # is finite, so a bad step leaves no half-updated network behind.
        self._spare_coefs = [np.zeros_like(c) for c in self.coefs_]
        self._spare_intercepts = [np.zeros_like(b) for b in self.intercepts_]
        trainable = n_layers if self.trainable_layers is None else self.trainable_layers
        self._first_trainable = n_layers - trainable
        if self.head == "rls":
            n_head = sizes[-2] + 1  # the last hidden units and the bias
            self.rls_p_ = np.eye(n_head) / self.rls_delta
            self._spare_p = np.zeros((n_head, n_head))
            self._phi = np.ones(n_head)  # [h, 1]: the bias input stays 1
            self._gain = np.zeros(n_head)
            self._scale = np.zeros(n_head)
            self._scale_outer = np.zeros((n_head, n_head))

    def _load_input(self, x: dict[Hashable, Any]) -> FloatArray:
        buffer = self._activity[0]
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

    def _forward(self, x: dict[Hashable, Any]) -> float:
        a = self._load_input(x)
        activity = self._activity
        for i, (coef, bias) in enumerate(zip(self.coefs_, self.intercepts_, strict=True)):
            out = activity[i + 1]
            np.matmul(a, coef, out=out)
            out += bias
            self._activations[i][0](out, out)
            a = out
        return float(a[0])

    # -- River API -------------------------------------------------------------------------

    def predict_one(self, x: dict[Hashable, Any]) -> float:
        if self.features_ is None:
            return 0.0  # no layer exists before the feature order is known
        return self._forward(x)

    def learn_one(self, x: dict[Hashable, Any], y: float, w: float = 1.0) -> None:
        if self.features_ is None:
            if not x:
                return
            self._build(sorted(x, key=str))
        n_layers = len(self.coefs_)
        first = self._first_trainable
        if first >= n_layers or w == 0:
            return
        yhat = self._forward(x)
        error = yhat - y
        if not math.isfinite(error):
            self.n_skipped_steps_ += 1
            return
        if self.rls_p_ is not None:
            self._rls_step(error, w)
            return
        step = self.lr * w
        clip = self.clip_gradient
        activity, deltas = self._activity, self._deltas
        spare_coefs, spare_intercepts = self._spare_coefs, self._spare_intercepts

        delta = deltas[-1]
        delta[0] = error
        self._activations[-1][1](activity[-1], delta)
        finite = True
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
                finite = False
                break
            if i > first:
                delta = below
        if not finite:
            self.n_skipped_steps_ += 1
            return
        # Copied rather than swapped so that coefs_[i] stays the same array object for a caller
        # holding on to it; a 50x50 copy costs about a microsecond.
        for i in range(first, n_layers):
            np.copyto(self.coefs_[i], spare_coefs[i])
            np.copyto(self.intercepts_[i], spare_intercepts[i])

    def _rls_step(self, error: float, w: float) -> None:
        """One recursive-least-squares update of the output layer (see the class docstring)."""
        p = self.rls_p_
        assert p is not None
        if w < 0:
            # A negative weight would remove information: P could stop being positive definite.
            self.n_skipped_steps_ += 1
            return
        phi, gain, spare_p = self._phi, self._gain, self._spare_p
        n_hidden = phi.shape[0] - 1
        phi[:n_hidden] = self._activity[-2]
        np.matmul(p, phi, out=gain)
        forgetting = self.rls_forgetting
        denominator = forgetting / w + float(phi @ gain)
        # Mathematically d > lambda / w > 0; rounding in a long-lived P could break that.
        if not (math.isfinite(denominator) and denominator > 0):
            self.n_skipped_steps_ += 1
            return
        step = error / denominator
        coef, bias = self._spare_coefs[-1], self._spare_intercepts[-1]
        np.multiply(gain[:n_hidden, None], -step, out=coef)
        coef += self.coefs_[-1]
        bias[0] = self.intercepts_[-1][0] - step * gain[n_hidden]
        # u u' / d rather than u (u / d)': each entry is then the same product both ways round,
        # so P stays exactly symmetric however many records it sees.
        np.multiply.outer(gain, gain, out=spare_p)
        spare_p *= -1.0 / denominator
        spare_p += p
        if forgetting < 1.0:
            # P / lambda, except that directions no record excites (a dead ReLU unit) would grow
            # by 1/lambda every record and burst into a huge step once excited (RLS "windup").
            # So P becomes S P S with S diagonal, S_ii = min(lambda^-1/2, (cap / P_ii)^1/2): still
            # symmetric positive definite, its diagonal at most cap = 1/delta, i.e. no weight
            # is ever less certain than before the first record. One pass, at every step.
            scale = self._scale
            np.maximum(spare_p.diagonal(), 1e-300, out=scale)  # rounding could leave 0 or less
            np.divide(1.0 / self.rls_delta, scale, out=scale)
            np.minimum(scale, 1.0 / forgetting, out=scale)
            np.sqrt(scale, out=scale)
            np.multiply.outer(scale, scale, out=self._scale_outer)
            spare_p *= self._scale_outer
        if not (
            math.isfinite(coef.sum()) and math.isfinite(bias[0]) and math.isfinite(spare_p.sum())
        ):
            self.n_skipped_steps_ += 1
            return
        np.copyto(self.coefs_[-1], coef)
        np.copyto(self.intercepts_[-1], bias)
        np.copyto(p, spare_p)
