"""A keyed run's blocks for any model but the compiled ``sgd`` (River's): rows parsed at once.

``--key-by COLUMN`` over CSV lines whose other columns are the features then the target: a
block of lines has its key column cut out and the rest parsed by the compiled parser
(``cut_column`` + ``parse_lines``, as the keyed ``sgd`` path reads them, the decoder judging
the lines it doubts), and each labeled row with a key is tested then trained on by its key's
learner through the record path's own step (``KeyedRouter.keyed_step``) from a dict of the
parsed row, with the feature names' strings shared by every row. So the results are the
record path's: each key's model, metrics, window, curve, drift monitor and divergence
guard, the whole stream's tally, counters, dead letters and predictions. Any other row
(unlabeled, rejected, without a key, a header) goes to ``KeyedRouter.route`` in order.

What it saves is the per-line decode (a ``Record`` made of Python ``float()`` cells and
the key) and a batch's collector work; River's ``predict_one`` and ``learn_one`` and
each key's bookkeeping stay as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from streamlearn.fast.block import (
    LABELED,
    NOTHING,
    LineDecoder,
    Parsed,
)
from streamlearn.keys.tally import RegressionTally
from streamlearn.records import Decoded, Record

from ..interfaces import Block, Decoder
from .blocks import ROWS_AT_ONCE, RowBlocks, collector_paused
from .keyblocks import KeyColumnReader, KeyedCsvPath, keyed_csv_refusal
from .keyrouter import KeyedRouter
from .paths import PathKit

__all__ = ["KeyedRowsPath", "KeyedRowsReader", "keyed_rows_path", "row_dict"]

log = logging.getLogger(__name__)

#: What was logged, once a process: why the record path ran, or "" for this path.
_told: set[str] = set()


def keyed_rows_path(kit: PathKit) -> KeyedRowsPath | None:
    """The keyed rows path for a keyed run whose lines it reads; None: record by record."""
    router = kit.router
    if not isinstance(router, KeyedRouter):
        return None
    why = _refusal(kit, router)
    if why is not None:
        if why not in _told:
            _told.add(why)
            log.info("--key-by: record by record (%s)", why)
        return None
    if "" not in _told:
        _told.add("")
        log.info("--key-by: each key's model learns parsed rows a block at a time")
    return KeyedRowsPath(kit, kit.learner.model, router)


def _refusal(kit: PathKit, router: KeyedRouter) -> str | None:
    """Why the keyed rows path cannot take this run's blocks (None: it can)."""
    why = keyed_csv_refusal(kit)
    if why is not None:
        return why
    if not isinstance(router.keys.tally, RegressionTally):
        return "a classifier's labels are read by the decoder"
    if router.keys.tally.feature_names is not None:
        return "the features are not fixed"
    return None


#: Features at most for which ``row_dict`` writes a dict display (a row of more: ``zip``).
_DISPLAYED = 256


def row_dict(features: Sequence[str]) -> Callable[[Sequence[float]], dict[str, float]]:
    """What makes a row's dict of features from its numbers (the target last, left out):
    ``dict(zip(features, numbers))``, the same keys in the same order with the same values.

    A dict display with the names bound (``{k0: n[0], k1: n[1], ...}``) builds it in one
    presized step: 0.3 us a row of five features against 0.8-1.0 us for ``dict(zip(...))``,
    which a River spec per key pays for every row. The code made names no feature, only
    positions; the names are the closure's.

    >>> make = row_dict(["a", "b"])
    >>> make([1.0, 2.0, 3.0])
    {'a': 1.0, 'b': 2.0}
    """
    names = tuple(features)
    if len(names) > _DISPLAYED:
        return lambda numbers: dict(zip(names, numbers, strict=False))
    slots = range(len(names))
    params = "".join(f"k{i}, " for i in slots)
    display = ", ".join(f"k{i}: n[{i}]" for i in slots)
    source = f"def bind({params}):\n    return lambda n: {{{display}}}\n"
    scope: dict[str, object] = {}
    exec(compile(source, "<row_dict>", "exec"), scope)
    bind = scope["bind"]
    assert callable(bind)
    made: Callable[[Sequence[float]], dict[str, float]] = bind(*names)
    return made


class KeyedRowsReader(KeyColumnReader[list[str | None]]):
    """The River specs' reader: each row's key as its text (None: none)."""

    def parse_keyed(self, block: Block, decoder: LineDecoder) -> tuple[Parsed, list[str | None]]:
        """The block parsed (rows placed in its own lines) and each row's key (None: none)."""
        from streamlearn.fast import _kernels

        starts = np.empty(block.lines + 1, dtype=np.int64)
        cut, keys = _kernels.cut_column(block.data, self.column, starts)
        keyless = [row for row, key in enumerate(keys) if key is None]
        parsed, judged = self._parse_cut(block, cut, starts, keyless, decoder)
        for row, key in judged.items():
            keys[row] = key
        return parsed, keys


class _RowRecord:
    """The ``Record`` of a block's row, made only when a rare branch of the step needs it
    (a dead letter, a diverged prediction, ``--predictions-all``): as the decoder makes it."""

    __slots__ = ("decoder", "parsed", "row")

    def __init__(self, parsed: Parsed, decoder: Decoder) -> None:
        self.parsed = parsed
        self.decoder = decoder
        self.row = 0

    def __call__(self) -> Record:
        item = self.parsed.judged.get(self.row)
        if item is None:
            item = self.decoder.decode(self.parsed.raw(self.row))
        assert isinstance(item, Record)
        return item


class KeyedRowsPath(RowBlocks, KeyedCsvPath[list[str | None]]):
    """Blocks of keyed CSV lines, parsed at once, learned a row at a time by each key's learner.

    Blocks of ``batch_size`` lines (``RowBlocks``): a River model holds the loop's lock for
    the block, and a slow one must not hold it for long.
    """

    name = "keyed-rows"

    def __init__(self, kit: PathKit, model: object, router: KeyedRouter) -> None:
        super().__init__(kit, model, router)
        #: The feature names: the same strings in every row's dict.
        self.features: Sequence[str] = tuple(self.decoder.features)
        #: A row's dict of features from its numbers.
        self.row_dict = row_dict(self.features)
        self.reader = KeyedRowsReader(self.decoder.features, self.column)

    def _learn_keyed(self, parsed: Parsed, keys: list[str | None]) -> None:
        """Rows ``0..parsed.stop`` in order: each labeled row with a key stepped in its key,
        every run of other rows routed as the record path routes them."""
        router = self.router
        counters = router.counters
        step = router.keyed_step()
        record = _RowRecord(parsed, self.kit.decoder)
        as_dict = self.row_dict
        kinds = parsed.status[: parsed.stop].tolist()
        values = parsed.values[: parsed.stop]
        others: list[Decoded] = []
        with collector_paused():
            for first in range(0, len(kinds), ROWS_AT_ONCE):
                rows = values[first : first + ROWS_AT_ONCE].tolist()
                for row, numbers in enumerate(rows, start=first):
                    key = keys[row]
                    if kinds[row] != LABELED or key is None:
                        others.append(self._item(parsed, row, kinds[row]))
                        continue
                    if others:
                        router.route(others)
                        others = []
                    counters.records_seen += 1
                    record.row = row
                    step(key, as_dict(numbers), numbers[-1], record)
        if others:
            router.route(others)
        tally = router.keys.tally
        assert isinstance(tally, RegressionTally)
        tally.settle()  # the block's predictions, scored in the whole stream's tally

    def _item(self, parsed: Parsed, row: int, kind: int) -> Decoded:
        """A row the record path routes: the decoder's verdict on its line."""
        item = parsed.judged.get(row)
        if item is None and kind != NOTHING:
            item = self.kit.decoder.decode(parsed.raw(row))
        return item
