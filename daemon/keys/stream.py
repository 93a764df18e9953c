"""The whole stream's prequential metrics in a keyed run, beside each key's own.

Every key's learner scores its own records; the whole stream's metrics score the same
predictions over all keys together, in stream order. They are kept by an
:class:`~streamlearn.evaluator.Evaluator` of a model that is never asked to predict: it is
only fed the (label, prediction) pairs the keys' learners made, so its metrics, rolling
window and learning curve are the whole stream's, in the very shape of a learner's.
"""

from __future__ import annotations

from streamlearn.evaluator import Evaluator

__all__ = ["NoModel", "whole_stream"]


class NoModel:
    """The model of the whole-stream tally: it never learns and is never asked to predict."""

    def predict_one(self, x: dict[str, float]) -> None:
        return None

    def learn_one(self, x: dict[str, float], y: float) -> None:
        return None


def whole_stream(rolling_window: int = 1000) -> Evaluator:
    """A tally of every key's predictions: feed it ``step_with_prediction(x, y, yhat)``.

    >>> tally = whole_stream(rolling_window=2)
    >>> for y, yhat in [(1.0, 0.0), (2.0, 2.5), (3.0, 3.0)]:
    ...     tally.step_with_prediction({}, y, yhat)
    >>> tally.records_scored, tally.summary()["mae"], tally.rolling_summary()["mae"]
    (3, 0.5, 0.25)
    """
    return Evaluator(NoModel(), rolling_window=rolling_window)
