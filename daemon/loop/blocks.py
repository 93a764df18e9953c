"""The block paths: lines parsed at once by the compiled parser, the record path's results.

A block is opened (parsed; the decoder judges the lines the parser doubts), learned (by the
``sgd`` kernels, or row by row by any other model), watched by the drift monitor, settled
(counters, dead letters and predictions written in stream order, as the ``Router`` writes
them) and finished like any batch. Where the record path would have acted on one record (a
non-finite prediction, a monitor that replaced the model) the block stops there and its
rest goes record by record.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from streamlearn.learner import Learner
from streamlearn.metrics import DIVERGED
from streamlearn.records import Rejected
from streamlearn.sources.base import Raw

from ..interfaces import (
    Block,
    BlockLearner,
    BlockSource,
    LinearModel,
    ParsedBlock,
    Regressor,
)
from .batch import BatchStart
from .paths import MIN_BLOCK_LINES, PathKit

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from streamlearn.fast.block import Parsed, Saved
    from streamlearn.fast.jsonblock import JsonParsed

ParsedT = TypeVar("ParsedT", bound=ParsedBlock)
SavedT = TypeVar("SavedT")
LearnerT = TypeVar("LearnerT")
ModelT = TypeVar("ModelT")

#: Parsed rows a River model's block turns into Python lists at a time (``_learn_rows``):
#: a few thousand floats alive at once, whatever the block's size.
ROWS_AT_ONCE = 128


class BlockPath(Generic[ParsedT]):
    """What the block paths share: taking blocks, and settling and finishing a learned one."""

    name = "block"

    def __init__(self, kit: PathKit, model: object) -> None:
        source = kit.source
        assert isinstance(source, BlockSource)  # ``choose_path`` saw to it
        self.kit = kit
        self.model = model
        self.blocks: BlockSource = source
        #: The decoder's layout when chosen (a header row may change it: then choose again).
        self.plain = kit.decoder.plain

    def fits(self, model: object) -> bool:
        return (
            model is self.model
            and not self.kit.compiled.missing
            and self.kit.decoder.plain == self.plain
        )

    def take(self, room: int) -> list[Raw] | Block:
        size = self.kit.block_size
        block = self.blocks.next_block(min(size, room) if room > 0 else size)
        if block is not None:
            return block
        # The source cannot make a block here (its careful per-line reading must take over).
        return self.kit.next_records(self.kit.record_want(room))

    def process(self, batch: list[Raw] | Block) -> None:
        if isinstance(batch, list):
            self.kit.router.process(batch)
        else:
            self.process_block(batch)

    def process_block(self, block: Block) -> None:
        raise NotImplementedError

    # -- the steps of a block --------------------------------------------------------------

    def _parsed(self, started: float) -> BatchStart:
        """The batch's start, taken once its block is parsed (``started``: parsing began)."""
        decoded = time.perf_counter()
        return BatchStart(
            self.kit.router.counters.records_seen,
            self.kit.learner.records_learned,
            decoded - started,
            decoded,
        )

    def _features(self, parsed: ParsedT) -> Sequence[str]:
        """The feature names of a parsed block's columns."""
        features: Sequence[str] | None = self.kit.decoder.features
        assert features is not None  # the plain CSV layout names its columns
        return features

    def _record_id(self, parsed: ParsedT, row: int) -> str | None:
        """The id of a row, for its prediction (plain CSV has no id column; a JSON block
        has ids only on the unlabeled rows the decoder judged: with an id key in its
        messages, JSON goes record by record)."""
        return None

    def _observe(
        self, parsed: ParsedT, yhat: NDArray[np.float64], done: int, model: object
    ) -> int | None:
        """Show the monitor each learned row before ``done``; the row where it changed the model."""
        import numpy as np

        from streamlearn.fast.block import LABELED, NOTHING

        monitor, router = self.kit.monitor, self.kit.router
        assert monitor is not None
        learner, host = self.kit.learner, router.host
        status = parsed.status[:done]
        learned = np.flatnonzero(status == LABELED)
        # The stream index the record path passes: records seen up to the row, less 1.
        seen = np.cumsum(status != NOTHING)[learned] + (router.counters.records_seen - 1)
        start = 0
        if monitor.errors_only:
            # Only the error is watched: hand the monitor numpy arrays, no feature dicts
            # (its compiled ADWIN reads them as they are; floats would cost as much again).
            indices = seen
            errors = np.abs(parsed.values[learned, -1] - yhat[learned])
            while start < len(indices) and monitor.errors_only:
                start += monitor.observe_errors(indices[start:], errors[start:], host)
                if learner.model is not model:
                    return int(learned[start - 1])
            if start == len(indices):
                return None
        observe, features = monitor.observe, self._features(parsed)
        learned, seen = learned[start:], seen[start:]
        for row, index, values, guess in zip(
            learned.tolist(),
            seen.tolist(),
            parsed.values[learned].tolist(),
            yhat[learned].tolist(),
            strict=True,
        ):
            x = dict(zip(features, values, strict=False))  # values end with the target
            observe(index, x, values[-1], guess, host)
            if learner.model is not model:
                return int(row)
        return None

    def _settle(self, parsed: ParsedT, yhat: NDArray[np.float64], done: int) -> None:
        """Counters, dead letters, predictions and kept errors of rows ``0..done``, in order."""
        import numpy as np

        from streamlearn.fast.block import LABELED, NOTHING, REJECTED, UNLABELED

        router = self.kit.router
        counters = router.counters
        status = parsed.status[:done]
        learned = status == LABELED
        if router.tracks_errors:
            router.errors.arrays.append(parsed.abs_errors(yhat, learned))
        others = np.flatnonzero(~learned).tolist()  # usually none, or the header
        kinds = status[others].tolist()
        counters.records_seen += done - kinds.count(NOTHING)
        if len(others) < done:  # the model-is-finite check before a checkpoint predicts it
            last = int(np.flatnonzero(learned)[-1])
            router.last_x = parsed.x(last, self._features(parsed))
        if router.predictions_all:  # every row, in order: the labeled ones write theirs too
            others, kinds = list(range(done)), status.tolist()
        for row, kind in zip(others, kinds, strict=True):
            if kind == LABELED:  # as ``Router.route`` with ``predictions_all``
                label = float(parsed.values[row, -1])
                where = parsed.raw(row).where()
                router.write_scored(self._record_id(parsed, row), where, float(yhat[row]), label)
            elif kind == REJECTED:
                item = parsed.judged[row]
                if isinstance(item, Rejected):
                    router.reject(item)
            elif kind == UNLABELED:  # as ``Router.unlabeled``; the kernel made the prediction
                counters.records_unlabeled += 1
                where = parsed.raw(row).where()
                router.write_prediction(self._record_id(parsed, row), where, float(yhat[row]))

    def _close(
        self, parsed: ParsedT, yhat: NDArray[np.float64], done: int, start: BatchStart
    ) -> None:
        """Write out rows ``0..done``, take the rest record by record, finish the batch."""
        self._settle(parsed, yhat, done)
        router = self.kit.router
        if done < parsed.rows:
            # The model predicted NaN/inf there, the monitor changed it, or a header row of
            # other columns starts there (``Parsed.stop``): record by record, in order.
            rest = [parsed.raw(row) for row in range(done, parsed.rows)]
            router.route(self.kit.decoder.decode_batch(rest))
        router.finish_batch(start)


class CompiledBlockPath(BlockPath[ParsedT], Generic[ParsedT, SavedT, LearnerT, ModelT]):
    """A block learned by compiled kernels (``streamlearn.fast``): ``sgd``'s into a
    ``Learner`` (here), a classifier's into a ``ClassLearner`` (``classblocks``)."""

    def _learner(self, lines: int) -> BlockLearner[ParsedT, SavedT, LearnerT, ModelT] | None:
        """The block learner for a block of ``lines``; None: go record by record."""
        raise NotImplementedError

    def _target(self) -> tuple[LearnerT, ModelT]:
        """The learner the blocks learn into, and its model."""
        raise NotImplementedError

    def process_block(self, block: Block) -> None:
        """``Router.process`` for a block, with the same results.

        The kernels learn the rows in order; then dead letters, predictions and counters are
        written in stream order. A drift monitor sees every learned record; if it changes
        the model at one, the block is learned again up to that record and the rest goes
        record by record, as the rest of a block does after a non-finite prediction.
        """
        fast = self._learner(block.lines)
        started = time.perf_counter()
        parsed = None
        if fast is not None:
            decoder = self.kit.decoder
            parsed = fast.parse(block, decoder)
        if fast is None or parsed is None:  # also JSON values of no layout the model has
            self.kit.router.process(block.raws())
            return
        start = self._parsed(started)
        learner, model = self._target()
        saved = fast.save(learner, model) if self.kit.monitor is not None else None
        done = fast.learn(learner, model, parsed, 0, parsed.rows)
        if saved is not None:
            changed = self._observe(parsed, fast.yhat, done, model)
            if changed is not None:
                fast.restore(learner, model, saved)
                done = fast.learn(learner, model, parsed, 0, changed + 1)
        self._close(parsed, fast.yhat, done, start)


class _SgdBlockPath(CompiledBlockPath[ParsedT, SavedT, Learner, LinearModel]):
    """A block learned by the ``sgd`` kernels into the ``Learner``."""

    def _target(self) -> tuple[Learner, LinearModel]:
        learner = self.kit.regressor
        model: LinearModel = learner.model
        return learner, model


class CsvBlockPath(_SgdBlockPath["Parsed", "Saved"]):
    """Blocks of plain CSV lines learned by ``sgd`` in the compiled kernels."""

    name = "csv-block"

    def _learner(self, lines: int) -> BlockLearner[Parsed, Saved, Learner, LinearModel] | None:
        return self.kit.compiled.csv_learner(lines)


class JsonBlockPath(_SgdBlockPath["JsonParsed", Any]):
    """Blocks of JSON values, one a line, learned by ``sgd`` in the compiled kernels."""

    name = "json-block"

    def _learner(self, lines: int) -> BlockLearner[JsonParsed, Any, Learner, LinearModel] | None:
        return self.kit.compiled.json_learner(lines)

    def _features(self, parsed: JsonParsed) -> Sequence[str]:
        features: Sequence[str] = parsed.features  # those of the block's layout
        return features

    def _record_id(self, parsed: JsonParsed, row: int) -> str | None:
        record_id: str | None = parsed.record_id(row)
        return record_id


class RowBlocks:
    """Blocks for a model that learns a row at a time: ``batch_size`` lines each (a River
    model holds the loop's lock per block, and a slow one must not hold it for long)."""

    kit: PathKit
    blocks: BlockSource

    def take(self, room: int) -> list[Raw] | Block:
        want = self.kit.record_want(room)
        if want >= MIN_BLOCK_LINES:
            block = self.blocks.next_block(want)
            if block is not None:
                return block
        return self.kit.next_records(want)


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a model learns a block.

    A River model makes and keeps many small objects (a tree's nodes and their statistics),
    and the young collections they set off would move them on to the oldest generation,
    whose collections walk the whole model and every module again. Paused, the block's
    survivors are aged by one young collection after it; their garbage dies by reference
    counting meanwhile. Same results, fewer full collections.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def record_rows(
    parsed: Parsed, features: Sequence[str]
) -> Iterator[tuple[int, int, dict[str, float]]]:
    """``(row, kind, x)`` of each labeled or unlabeled row before ``parsed.stop``, in order
    (rejected rows, headers and blank lines are ``_settle``'s). The rows become Python lists
    a slice at a time: fewer alive at once."""
    from streamlearn.fast.block import UNLABELED

    values = parsed.values[: parsed.stop]
    kinds = parsed.status[: parsed.stop].tolist()
    for first in range(0, len(kinds), ROWS_AT_ONCE):
        for row, numbers in enumerate(values[first : first + ROWS_AT_ONCE].tolist(), start=first):
            kind = kinds[row]
            if kind <= UNLABELED:
                yield row, kind, dict(zip(features, numbers, strict=False))  # less the target


class RowsBlockPath(RowBlocks, BlockPath["Parsed"]):
    """Blocks of plain CSV lines learned by any other model (River's), a row at a time.

    The compiled parser reads the block (the decoder judges the lines it doubts), and the
    model predicts, then learns, each record in order, from a dict of the parsed row. What
    ``Learner.step`` does besides (the metrics, the rolling window, the curve) is then done
    for the whole block at once by the compiled kernel; the drift monitor (one that can
    only alert: ``choose_path``) watches the block, and counters, dead letters and
    predictions are written as on the other block paths. From a prediction the divergence
    guard must see, the rest goes record by record.
    """

    name = "rows-block"

    def process_block(self, block: Block) -> None:
        fast = self.kit.compiled.csv_learner(block.lines)
        started = time.perf_counter()
        if fast is None:
            self.kit.router.process(block.raws())
            return
        parsed = fast.parse(block, self.kit.decoder)
        start = self._parsed(started)
        learner = self.kit.regressor
        yhat = self._learn_rows(learner.model, parsed)
        done = len(yhat)
        fast.score(learner, parsed, yhat, done)
        if self.kit.monitor is not None:
            # It can only alert: the model that learned the block stays.
            self._observe(parsed, yhat, done, learner.model)
        self._close(parsed, yhat, done, start)

    def _learn_rows(self, model: Regressor, parsed: Parsed) -> NDArray[np.float64]:
        """Predict, then learn, each record of a parsed block; the prediction of each row.

        Unlabeled rows are predicted only; other rows get NaN. It stops before the first
        prediction that is None, NaN, infinite or beyond ``metrics.DIVERGED`` (which
        ``Learner.step`` does not score), or at ``parsed.stop`` (a header row of other
        columns): the array then ends there.
        """
        import numpy as np

        from streamlearn.fast.block import LABELED

        predict, learn = model.predict_one, model.learn_one
        targets = parsed.values[: parsed.stop, -1].tolist()
        guesses = [math.nan] * parsed.stop
        with collector_paused():
            for row, kind, x in record_rows(parsed, self._features(parsed)):
                guess = predict(x)
                if guess is None or not -DIVERGED < guess < DIVERGED:
                    return np.array(guesses[:row], dtype=np.float64)
                guesses[row] = guess
                if kind == LABELED:
                    learn(x, targets[row])
        return np.array(guesses, dtype=np.float64)
