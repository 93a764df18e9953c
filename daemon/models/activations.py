"""The activation functions of the numpy MLP, under the names scikit-learn and Keras use.

Each activation is computed in place into a preallocated buffer; its derivative is written in
terms of the activation's *output*, which the forward pass has already stored, so backprop never
keeps the pre-activations around.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = ["ACTIVATIONS", "Activation"]

FloatArray = npt.NDArray[np.float64]


def relu(z: FloatArray, out: FloatArray) -> None:
    np.maximum(z, 0.0, out=out)


def relu_grad(a: FloatArray, delta: FloatArray) -> None:
    # a > 0 exactly where z > 0, the same subgradient choice (0 at z == 0) as scikit-learn.
    delta[a <= 0.0] = 0.0


def tanh(z: FloatArray, out: FloatArray) -> None:
    np.tanh(z, out=out)


def tanh_grad(a: FloatArray, delta: FloatArray) -> None:
    delta *= 1.0 - a * a


def logistic(z: FloatArray, out: FloatArray) -> None:
    # 1 / (1 + e^-z) written through tanh: the same value, but no overflow warning for large |z|.
    np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5


def logistic_grad(a: FloatArray, delta: FloatArray) -> None:
    delta *= a * (1.0 - a)


def identity(z: FloatArray, out: FloatArray) -> None:
    out[...] = z


def identity_grad(a: FloatArray, delta: FloatArray) -> None:
    return None


Activation = tuple[
    Callable[[FloatArray, FloatArray], None], Callable[[FloatArray, FloatArray], None]
]

#: Activation name -> (function, derivative). The names scikit-learn and Keras use for the
#: same functions, so a batch model's own spelling carries over unchanged.
ACTIVATIONS: dict[str, Activation] = {
    "relu": (relu, relu_grad),
    "tanh": (tanh, tanh_grad),
    "logistic": (logistic, logistic_grad),
    "sigmoid": (logistic, logistic_grad),
    "identity": (identity, identity_grad),
    "linear": (identity, identity_grad),
}
