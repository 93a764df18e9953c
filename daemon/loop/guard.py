"""The divergence guard: a model that predicts NaN/inf, or whose error explodes, is restored.

Never learned from, served or checkpointed: the model of the newest durable checkpoint
(else a fresh one) takes its place, and the metrics carry on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from .batch import BatchErrors
from .checkpointing import Checkpointer
from .host import LoopHost

log = logging.getLogger(__name__)


class DivergenceGuard:
    """Restores the last good model when the current one diverged.

    Parameters
    ----------
    host
        The learner, the counters (``divergence_events``), the model factory and telemetry.
    checkpoints
        Where the last good model comes from.
    factor
        A batch whose MAE is over ``factor`` times the recent level restores the model
        (0: only non-finite predictions do).
    """

    def __init__(self, host: LoopHost, checkpoints: Checkpointer, factor: float = 0.0) -> None:
        self.host = host
        self.checkpoints = checkpoints
        self.factor = factor
        #: The rolling MAE as the last batch left it: the "recent level" of ``check_batch``.
        self.recent_mae: float | None = None

    def restore(self, where: Mapping[str, Any], value: float) -> None:
        """The model predicted ``value`` (NaN/inf, or an exploded error) at ``where``: restore."""
        host = self.host
        host.counters.divergence_events += 1
        self.recent_mae = None  # the restored model is judged from its next batch on
        if host.telemetry is not None:
            host.telemetry.divergence()
        restored = self.checkpoints.last_good_model()
        if restored is None and host.model_factory is not None:
            restored = host.model_factory()
        log.error(
            "model diverged (prediction %s at %s); restored the %s",
            value,
            where,
            "last checkpointed model" if self.checkpoints.has_checkpoint else "initial model",
        )
        if restored is not None:
            host.learner.reset_model(restored)

    def restore_unless_cold(
        self, where: Mapping[str, Any], value: float, last: dict[str, float] | None
    ) -> bool:
        """An unlabeled record was predicted ``value`` (NaN/inf): restore the model (True)
        unless it still predicts ``last``, the last record learned (None: none since the start,
        whose model is fresh or a checked checkpoint's). It then only cannot predict this record
        (a feature it never saw, nothing learned yet), which is no divergence."""
        if last is None or self.host.learner.sound(last):
            return False
        self.restore(where, value)
        return True

    def check_model(self, x: dict[str, float] | None) -> None:
        """Before a checkpoint: a model that predicts ``x`` (the last record learned) as NaN/inf
        is restored first, so a diverged model is never stored."""
        if x is None:
            return
        if not self.host.learner.sound(x):
            self.restore({}, math.nan)

    def check_batch(self, errors: BatchErrors) -> None:
        """A batch whose error is far above the level before it restores the model.

        The level is the rolling MAE as the previous batch left it. Read after this batch,
        the window would hold the batch's own last records (only those, after a whole block):
        a stream that converges within a block (a target without noise) would read as an
        explosion, and the model be restored, converge again, and so on block after block.
        """
        factor = self.factor
        learner = self.host.learner
        if factor <= 0 or len(errors) < 10:
            return
        recent = self.recent_mae
        full = learner.window_len >= learner.rolling_window
        self.recent_mae = learner.rolling_mae() if full else None
        batch_mae = errors.mean()
        if recent is not None and recent > 0 and batch_mae > factor * recent:
            log.error(
                "prequential error exploded: batch MAE %.6g is over %g times the recent %.6g",
                batch_mae,
                factor,
                recent,
            )
            self.restore({}, batch_mae)
