"""A keyed ``sgd`` run's blocks, learned by the compiled kernels (issue 14, point 9).

``--key-by COLUMN`` over CSV lines whose other columns are the features then the target,
with ``--model sgd``: a block of lines has its key column cut out and each row's key given
an id by the key index in C (``KeyIds.cut``), is parsed as the plain layout
(``parse_lines``), each labeled row is given its key's slot (``keys.slots``: an array the
id's slot) and ``learn_rows_keyed`` tests then trains every row in its key's slot, in stream
order. The results are the record path's (``KeyedRouter``) to the last bit: each key's
weights, metrics, window, curve and drift events, the whole stream's tally, counters, dead
letters and predictions.

Any row the kernel does not take (unlabeled, rejected, a header, a key the slots do not
hold, a prediction the divergence guard must see) goes to ``KeyedRouter.route`` on its own,
in order; the store settles that key's slot first (``KeyedModels.overlay``). The path is
taken only where it is exact (``keyed_path``): otherwise the record path runs, and the log
says which.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from streamlearn.fast.block import (
    DOUBT,
    NOTHING,
    BlockLearner,
    BlockReader,
    LineDecoder,
    Parsed,
    compiled_kernels,
    locator,
)
from streamlearn.fast.keyspec import K_DONE, K_FULL
from streamlearn.keys.slotbase import SlotTable
from streamlearn.keys.slots import KeySlots, slot_learner
from streamlearn.keys.tally import RegressionTally
from streamlearn.keys.units import KeyRegressor
from streamlearn.records import CsvDecoder, Record

from ..interfaces import Block, BlockSource
from .blocks import BlockPath
from .host import LoopHost
from .paths import MIN_BLOCK_LINES, PathKit

if TYPE_CHECKING:
    from .keyrouter import KeyedRouter

__all__ = [
    "KeyColumnReader",
    "KeyedBlockPath",
    "KeyedBlockReader",
    "KeyedCsvPath",
    "SlotBlockPath",
    "keyed_path",
    "refused",
    "slots_for",
]

log = logging.getLogger(__name__)

#: Why the record path ran, as logged (once each).
_told: set[str] = set()

#: What a keyed path's reader makes of each row's key (its id, or its text).
KeysT = TypeVar("KeysT")


class KeyColumnReader(BlockReader, Generic[KeysT]):
    """Parses blocks of keyed CSV lines once the key column is cut out: the rest is the plain
    layout. The keyed paths' readers differ only in what a row's key becomes."""

    def __init__(self, features: Sequence[str], column: int) -> None:
        from streamlearn.fast import _kernels

        super().__init__(features, _kernels.parse_lines)
        self.column = column

    def _parse_cut(
        self, block: Block, cut: bytes, starts: NDArray[np.int64], keyless: Sequence[int],
        decoder: LineDecoder,
    ) -> tuple[Parsed, dict[int, str | None]]:  # fmt: skip
        """``cut`` (the block without its key column, lines at ``starts``) parsed, and the key
        of each line the decoder judged (the ``keyless`` rows and those the parser doubts),
        by row; at a header of other columns ``stop`` is set and the rest left unjudged."""
        lines = block.lines
        n_fields = len(self.features) + 1
        values = np.empty((lines, n_fields))
        status = np.empty(lines, dtype=np.int8)
        rows = self._parse(cut, n_fields, values, status, np.empty(lines + 1, dtype=np.int64))
        assert rows == lines, (rows, lines)
        parsed = Parsed(values, status, starts, block.data, block.offset, {}, locator(block))
        self._doubt(parsed)  # a classifier's targets that are no class code
        status[list(keyless)] = DOUBT  # the decoder judges a line whose key cell it must read
        judged: dict[int, str | None] = {}
        for row in np.flatnonzero(status == DOUBT).tolist():
            if decoder.changes_schema(parsed.raw(row)):
                parsed.stop = row  # a header of other columns: the rest record by record
                break
            item = self._judge(parsed, row, decoder)
            judged[row] = item.key if type(item) is Record else None
        return parsed, judged

    def parse_keyed(self, block: Block, decoder: LineDecoder) -> tuple[Parsed, KeysT]:
        """The block parsed (rows placed in its own lines) and each row's key."""
        raise NotImplementedError


class KeyedCsvPath(BlockPath[Parsed], Generic[KeysT]):
    """What the keyed block paths share: blocks of keyed CSV lines read by ``reader`` and
    learned by ``_learn_keyed``, the lines after a header of other columns record by record;
    the path is chosen again once the header in force changes."""

    reader: KeyColumnReader[KeysT]

    def __init__(self, kit: PathKit, model: object, router: KeyedRouter) -> None:
        super().__init__(kit, model)
        decoder = kit.decoder
        assert isinstance(decoder, CsvDecoder) and decoder.keys is not None
        assert decoder.keys.field is not None
        self.router = router
        self.decoder = decoder
        self.header = list(decoder.header)
        #: The key column's place in a line.
        self.column = decoder.header.index(decoder.keys.field)

    def fits(self, model: object) -> bool:
        return (
            model is self.model
            and not self.kit.compiled.missing
            and self.decoder.header == self.header
        )

    def process_block(self, block: Block) -> None:
        router = self.router
        if block.lines < MIN_BLOCK_LINES:
            router.process(block.raws())
            return
        started = time.perf_counter()
        parsed, keys = self.reader.parse_keyed(block, self.kit.decoder)
        start = self._parsed(started)
        self._learn_keyed(parsed, keys)
        if parsed.stop < parsed.rows:  # a header of other columns: the rest record by record
            rest = [parsed.raw(row) for row in range(parsed.stop, parsed.rows)]
            router.route(self.kit.decoder.decode_batch(rest))
        router.finish_batch(start)

    def _learn_keyed(self, parsed: Parsed, keys: KeysT) -> None:
        """Rows ``0..parsed.stop`` of the block, in order."""
        raise NotImplementedError


class KeyedBlockReader(KeyColumnReader[NDArray[np.int64]]):
    """The compiled keyed paths' reader: each row's key as its id in ``slots``."""

    def __init__(self, features: Sequence[str], column: int, slots: SlotTable[Any]) -> None:
        super().__init__(features, column)
        self.slots = slots

    def parse_keyed(self, block: Block, decoder: LineDecoder) -> tuple[Parsed, NDArray[np.int64]]:
        """The block parsed (rows placed in its own lines) and each row's key id (``slots``'
        ``names``; -1: none)."""
        starts = np.empty(block.lines + 1, dtype=np.int64)
        ids = np.empty(block.lines, dtype=np.int64)
        cut = self.slots.ids.cut(block.data, self.column, starts, ids)
        keyless = np.flatnonzero(ids < 0).tolist()
        parsed, judged = self._parse_cut(block, cut, starts, keyless, decoder)
        for row, key in judged.items():
            ids[row] = -1 if key is None else self.slots.ids.key_id(key)
        return parsed, ids


def keyed_path(kit: PathKit) -> KeyedBlockPath | None:
    """The compiled keyed ``sgd`` path for a keyed run, where it gives the record path's
    results; None (why logged once: another keyed path or the record path takes the run)."""
    from .keyrouter import KeyedRouter

    router = kit.router
    if not isinstance(router, KeyedRouter) or not isinstance(router.keys.tally, RegressionTally):
        return None  # a classifier's: ``classkeyblocks``
    why = _refusal(kit, router)
    if why is not None:
        refused(why, "sgd")
        return None
    slots = slots_for(kit, router, KeySlots, "sgd")
    assert isinstance(slots, KeySlots)
    return KeyedBlockPath(kit, kit.learner.model, router, slots)


def refused(why: str, model: str) -> None:
    """Log once why a run is not on a compiled keyed path."""
    said = f"{model}: {why}"
    if said not in _told:
        _told.add(said)
        log.info("--key-by: not on the compiled %s path (%s)", model, why)


def slots_for(
    kit: PathKit, router: KeyedRouter, kind: type[SlotTable[Any]], model: str
) -> SlotTable[Any]:
    """The store's slots of ``kind`` for the features of the run's header (made, and the
    store's earlier slots settled, when it holds none such)."""
    decoder = kit.decoder
    keys = router.keys
    models = keys.models
    slots = models.overlay
    if not isinstance(slots, kind) or slots.features != decoder.features:
        template = models.codec.fresh("")
        host = LoopHost(template, router.counters, router.host.telemetry,
                        keys.model_factory, keys.warm_model_factory)  # fmt: skip
        from streamlearn.fast import _kernels

        assert decoder.features is not None
        slots = kind(models, template, decoder.features, models.max_live, host,
                     _kernels.KeyIndex(), _kernels.held_slots)  # fmt: skip
        models.overlay.settle_all()  # an earlier path's slots (another header's features)
        models.overlay = slots
        log.info(
            "--key-by: %s per key on the compiled keyed path (%d features, up to %d keys in slots)",
            model,
            len(slots.features),
            slots.capacity,
        )
    return slots


def keyed_csv_refusal(kit: PathKit) -> str | None:
    """Why neither keyed block path can read this run's lines (None: they can)."""
    decoder = kit.decoder
    if not kit.fastpath:
        return "STREAMLEARN_FASTPATH=0"
    if kit.compiled.missing or compiled_kernels() is None:
        return "the compiled kernels are not built"
    if not isinstance(kit.source, BlockSource):
        return "the source reads no blocks"
    if not isinstance(decoder, CsvDecoder) or decoder.keys is None or decoder.keys.field is None:
        return "the keyed block paths read CSV keyed by a column"
    if not decoder.plain_keyed:
        return "the columns are not the key, the features then the target"
    return None


def _refusal(kit: PathKit, router: KeyedRouter) -> str | None:
    """Why the compiled keyed path cannot take this run's blocks (None: it can)."""
    keys = router.keys
    why = keyed_csv_refusal(kit)
    if why is not None:
        return why
    if not isinstance(keys.tally, RegressionTally) or keys.tally.feature_names is not None:
        return "the features are not fixed"
    if keys.labelers is not None or router.join is not None or keys.fallback == "global":
        return "pseudo-labels, late labels or --key-fallback global see each record"
    template = keys.models.codec.fresh("")
    if not isinstance(template, KeyRegressor) or not slot_learner(template, template):
        return "the model is not sgd (with no warm start, and drift alerts only)"
    return None


class SlotBlockPath(KeyedCsvPath[NDArray[np.int64]]):
    """Blocks of keyed CSV lines learned per key in slots by a compiled keyed kernel: the
    loop over a block's rows that the models' paths share. A model's path runs its kernel
    (``_run``, into the outputs ``_outputs`` makes) and tells the whole stream of the rows
    learned (``_learned``)."""

    slots: SlotTable[Any]

    def _outputs(self, rows: int) -> None:
        """Make the kernel's outputs for a block of ``rows`` rows."""
        raise NotImplementedError

    def _run(
        self, parsed: Parsed, at: NDArray[np.int64], index: NDArray[np.int64], row: int,
        end: int, why: NDArray[np.int64],
    ) -> int:  # fmt: skip
        """The kernel over rows ``row..end`` (``at``: their slots); the row it stopped at."""
        raise NotImplementedError

    def _learned(
        self, parsed: Parsed, ids: NDArray[np.int64], at: NDArray[np.int64], start: int, stop: int
    ) -> None:
        """Rows ``start..stop`` were learned in their slots: the whole stream hears of them
        as ``KeyedRouter`` tells it, in order."""
        raise NotImplementedError

    def _learn_keyed(self, parsed: Parsed, ids: NDArray[np.int64]) -> None:
        """Rows ``0..parsed.stop`` in order: runs of labeled rows in the kernel, the others
        one by one on the record path; at most ``capacity`` rows' keys in slots at once."""
        slots = self.slots
        status = parsed.status
        stop = parsed.stop
        seen = self.kit.router.counters.records_seen
        index = np.cumsum(status != NOTHING, dtype=np.int64) + (seen - 1)
        at = np.full(parsed.rows, -1, dtype=np.int64)
        self._outputs(parsed.rows)
        why = np.zeros(1, dtype=np.int64)
        row = 0
        while row < stop:
            end = min(stop, row + slots.capacity)
            slots.assign(ids, status, at, row, end)
            slots.released.clear()
            learned = row  # rows learned from here on are told of at once
            while row < end:
                row = self._run(parsed, at, index, row, end, why)
                if why[0] == K_FULL:  # the key's monitor hears of its errors; learning goes on
                    slots.flush(int(at[row]))
                    continue
                if row > learned:
                    self.slots.changed[at[learned:row]] = True
                    self.kit.router.counters.records_seen += row - learned
                    self.router.keys.tally.keyed.learned += row - learned
                    self._learned(parsed, ids, at, learned, row)
                if why[0] == K_DONE:
                    break
                self._route_row(parsed, row)  # the record path's row (the key settled first)
                row += 1
                learned = row
                slots.reassign(ids, at, row, end)

    def _write_learned(
        self, parsed: Parsed, ids: NDArray[np.int64], start: int, answers: list[Any],
        labels: list[Any],
    ) -> None:  # fmt: skip
        """``--predictions-all``: the lines of rows ``start..`` learned in their slots, their
        answers and labels, as ``KeyedRouter`` writes them."""
        write = self.kit.router.predictions.write
        names = self.slots.ids.names
        for row, answer, label in zip(range(start, start + len(answers)), answers, labels,
                                      strict=True):  # fmt: skip
            key = names[ids[row]]  # a row learned in a slot has its key
            line = self.router.output_line(None, parsed.raw(row).where(), key, answer)
            line["label"] = label
            write(line)

    def _route_row(self, parsed: Parsed, row: int) -> None:
        item = parsed.judged.get(row)
        if item is None and parsed.status[row] != NOTHING:
            item = self.kit.decoder.decode(parsed.raw(row))
        self.kit.router.route([item])


class KeyedBlockPath(SlotBlockPath):
    """Blocks of keyed CSV lines learned by ``sgd`` per key in the compiled kernels."""

    name = "keyed-block"

    def __init__(self, kit: PathKit, model: object, router: KeyedRouter, slots: KeySlots) -> None:
        super().__init__(kit, model, router)
        tally = router.keys.tally
        assert isinstance(tally, RegressionTally)
        self.tally = tally
        self.slots = self.table = slots
        self.reader = KeyedBlockReader(self.decoder.features, self.column, slots)
        kernels = compiled_kernels()
        assert kernels is not None
        self.scorer = BlockLearner(["yhat"], kernels)
        from streamlearn.fast import _kernels

        self._learn = _kernels.learn_rows_keyed
        self.yhat: NDArray[np.float64] = np.empty(0)

    def _outputs(self, rows: int) -> None:
        self.yhat = np.full(rows, np.nan)

    def _run(
        self, parsed: Parsed, at: NDArray[np.int64], index: NDArray[np.int64], row: int,
        end: int, why: NDArray[np.int64],
    ) -> int:  # fmt: skip
        slots = self.table
        return self._learn(
            parsed.values, parsed.status, at, index, row, end, slots.weights, slots.lr, 2.0,
            slots.state, slots.counters, slots.ring_y, slots.ring_yhat, slots.curve,
            slots.pend_err, slots.pend_idx, self.yhat, why,
        )  # fmt: skip

    def _learned(
        self, parsed: Parsed, ids: NDArray[np.int64], at: NDArray[np.int64], start: int, stop: int
    ) -> None:
        """Rows ``start..stop`` were learned in their slots: the whole stream hears of them
        as ``KeyedRouter._learn`` tells it, in order."""
        count = stop - start
        router = self.kit.router
        tally = self.tally
        values = parsed.values[start:stop]
        guesses = self.yhat[start:stop]
        rows = Parsed(values, parsed.status[start:stop], parsed.starts[: count + 1], b"", 0, {})
        self.scorer.score(tally, rows, guesses, count)
        if router.tracks_errors:
            router.errors.arrays.append(np.abs(values[:, -1] - guesses))
        if router.predictions_all:
            self._write_learned(parsed, ids, start, guesses.tolist(), values[:, -1].tolist())
