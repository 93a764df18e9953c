"""Recursive least squares (RLS) for the output layer of ``MLPRegressor(head="rls")``.

When only the output layer of an ``MLPRegressor`` learns (feature extraction), it can be fitted
by recursive least squares on the last hidden activations ``h`` (plus a constant 1 for the
bias) instead of SGD. Hidden ReLU features are strongly correlated, so a plain gradient step on
them is ill-conditioned and slow; RLS is invariant to that conditioning. Per record, with
``phi = [h, 1]``, ``theta`` the output weights and bias, and ``lambda`` the forgetting factor::

    u     = P phi
    d     = lambda / w + phi' u
    theta = theta - u (yhat - y) / d
    P     = (P - u u' / d) / lambda      (then bounded: see ``rls_forgetting``)

``theta`` starts at the given output layer (so a warm-started network predicts exactly as
given until it learns) and ``P = I / rls_delta``: with ``rls_forgetting=1`` this is exactly
ridge regression of ``y`` on ``phi`` pulled towards the starting weights with strength
``rls_delta``. It costs one ``(n+1) x (n+1)`` rank-one update per record (n hidden units),
about ``3 (n+1)^2`` flops.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["RLSHead"]

FloatArray = npt.NDArray[np.float64]


class RLSHead:
    """The RLS update of an ``MLPRegressor``'s output layer, as a mixin of that class.

    The state (``P`` as ``rls_p_``, the layers) and the work buffers are the network's own
    attributes, so a network pickled in a checkpoint keeps its layout; this class only holds
    the methods that allocate and update them. The attributes it reads are declared below.
    """

    rls_p_: FloatArray | None
    rls_forgetting: float
    rls_delta: float
    coefs_: list[FloatArray]
    intercepts_: list[FloatArray]
    n_skipped_steps_: int
    _activity: list[FloatArray]
    _spare_coefs: list[FloatArray]
    _spare_intercepts: list[FloatArray]

    #: The work buffers of one update: scratch, not state (a checkpoint leaves them out).
    RLS_SCRATCH = ("_spare_p", "_phi", "_gain", "_scale", "_scale_outer")

    def _build_rls(self, n_hidden: int) -> None:
        """Allocate ``P = I / rls_delta`` and the buffers of one update, for ``n_hidden`` units."""
        n_head = n_hidden + 1  # the last hidden units and the bias
        self.rls_p_ = np.eye(n_head) / self.rls_delta
        self._build_rls_scratch(n_head)

    def _build_rls_scratch(self, n_head: int) -> None:
        """Allocate the work buffers of one update (``RLS_SCRATCH``) for a head of ``n_head``."""
        self._spare_p = np.zeros((n_head, n_head))
        self._phi = np.ones(n_head)  # [h, 1]: the bias input stays 1
        self._gain = np.zeros(n_head)
        self._scale = np.zeros(n_head)
        self._scale_outer = np.zeros((n_head, n_head))

    def _rls_step(self, error: float, w: float) -> None:
        """One RLS update of the output layer (see the module docstring); skipped if not finite."""
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
