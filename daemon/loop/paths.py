"""The record paths and the one function that chooses among them.

A batch becomes learning along one of five paths (``streamlearn.interfaces.RecordPath``):

- record by record (``RecordByRecord``): any decoder, any model, every optional part;
- a compiled CSV block (``blocks.CsvBlockPath``): plain CSV lines learned by ``sgd`` in
  the C kernels, with the record path's results bit for bit;
- a compiled JSON block (``blocks.JsonBlockPath``): JSON values, likewise;
- a River rows block (``blocks.RowsBlockPath``): plain CSV parsed at once, then learned
  by any other model a row at a time, its metrics kept by the kernel;
- a compiled classifier's block (``classblocks.ClassBlockPath``): plain CSV lines learned
  by ``logistic`` or ``softmax`` in the C kernels, with the record path's results.

A keyed run (``--key-by`` a CSV column) has its own two: ``keyblocks.KeyedBlockPath`` (``sgd``
per key in the C kernels) and ``keyrows.KeyedRowsPath`` (any other model: parsed rows, each
stepped in its key as the record path steps it).

``choose_path`` picks one when the loop starts; the loop asks it again only when the path
no longer ``fits``: the ``sgd`` model learned its first weights, the model was replaced
(a drift action, a divergence restore), the compiled kernels turned out to be missing, or
a CSV header row changed the decoder's layout (``Decoder.plain``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamlearn.json_decoder import JsonDecoder
from streamlearn.learner import Learner
from streamlearn.sources.base import Raw, Source

from ..interfaces import (
    Block,
    BlockSource,
    Decoder,
    FusedModel,
    LearnerLike,
    LinearModel,
    Monitor,
    RecordPath,
)
from .router import Router

if TYPE_CHECKING:
    from streamlearn.fast.block import BlockLearner, Kernels
    from streamlearn.fast.jsonblock import JsonBlockLearner

#: Lines per block on the compiled paths (``batch_size`` counts records on the record path).
#: A block holds the loop's lock for some milliseconds; the Python work around it (a dozen
#: calls, a few small arrays) is then a small share of each line's cost.
BLOCK_LINES = 8192
#: Blocks of fewer lines go record by record: too short to pay for a block's set-up (arrays,
#: loading and storing the model's state) in the compiled kernels.
MIN_BLOCK_LINES = 64
#: Lines the record path takes while ``sgd`` waits for its first weights (from its first
#: record): a few, not a whole batch, so that blocks follow soon.
FIRST_LINES = 16


def fastpath_enabled() -> bool:
    """``STREAMLEARN_FASTPATH=0`` turns the block paths off (to compare, or to rule them out)."""
    return os.environ.get("STREAMLEARN_FASTPATH", "1") != "0"


class CompiledBlocks:
    """The compiled kernels, loaded at the first block worth them, and the learner built on them.

    One per daemon: the CSV block and rows block paths share the plain CSV ``BlockLearner``;
    JSON values have their own. ``missing`` turns True when the extension is not built.
    """

    def __init__(self, decoder: Decoder, learner: LearnerLike) -> None:
        self.decoder = decoder
        self.learner = learner
        self.missing = False
        self.csv: BlockLearner | None = None
        self.json: JsonBlockLearner | None = None

    @property
    def built(self) -> BlockLearner | JsonBlockLearner | None:
        """The block learner, once a block was worth building it."""
        return self.csv if self.csv is not None else self.json

    def csv_learner(self, lines: int) -> BlockLearner | None:
        """The plain CSV block learner for a block of ``lines``; None: go record by record."""
        if lines < MIN_BLOCK_LINES:
            return None  # a header-only file or a trickle of live lines: not worth a block
        if self.csv is None:
            from streamlearn.fast import block as fastpath

            kernels = self._kernels()
            if kernels is None:
                return None
            features = self.decoder.features
            assert features is not None  # the plain CSV layout names its columns
            self.csv = fastpath.BlockLearner(features, kernels)
        return self.csv

    def json_learner(self, lines: int) -> JsonBlockLearner | None:
        """The JSON block learner for a block of ``lines``; None: go record by record."""
        if lines < MIN_BLOCK_LINES:
            return None
        if self.json is None:
            from streamlearn.fast.jsonblock import JsonBlockLearner

            kernels = self._kernels()
            if kernels is None:
                return None
            assert isinstance(self.decoder, JsonDecoder) and isinstance(self.learner, Learner)
            self.json = JsonBlockLearner(self.decoder, self.learner, kernels)
        return self.json

    def _kernels(self) -> Kernels | None:
        from streamlearn.fast import block as fastpath

        kernels: Kernels | None = fastpath.compiled_kernels()
        if kernels is None:
            self.missing = True  # the extension is not built: record by record from here on
        return kernels


@dataclass
class PathKit:
    """What every record path is made of, shared by all of them for the daemon's life."""

    source: Source
    decoder: Decoder
    learner: LearnerLike
    router: Router
    monitor: Monitor | None
    compiled: CompiledBlocks
    #: ``fastpath_enabled()`` when the daemon was made.
    fastpath: bool
    #: Records per batch on the record path, lines per block on the compiled paths.
    batch_size: int
    block_size: int

    @property
    def regressor(self) -> Learner:
        """The learner, a regressor's: the only kind the block paths learn into yet."""
        learner = self.learner
        assert isinstance(learner, Learner)
        return learner

    def record_want(self, room: int) -> int:
        """Records the next record batch may hold: ``batch_size``, ending where ``room`` ends."""
        return min(self.batch_size, room) if room > 0 else self.batch_size

    def next_records(self, want: int) -> list[Raw]:
        """Up to ``want`` raw items from the source, for the record path."""
        raws: list[Raw] = self.source.next_batch(want)
        return raws


def choose_path(kit: PathKit) -> RecordPath:
    """The path the next batches take, for the model the learner holds now.

    Blocks need a source that makes them, a decoder whose lines the compiled parser reads
    (plain CSV, JSON values), the fast path on, a learner that learns (not ``--no-learn``)
    and no part that must see each record on its own (a baseline model, pseudo-labels, the
    late-label join). Then ``sgd`` learns in
    the kernels once it holds a weight for every feature; any other model (River's) takes
    rows blocks on plain CSV, unless it predicts and learns in one call (the project's own
    ``mlp``) or a drift monitor may replace it halfway through a block. A classifier's path is
    ``classblocks.class_path``'s choice.
    """
    model = kit.learner.model
    if kit.router.keyed:
        from .keyblocks import keyed_path

        keyed = keyed_path(kit)  # per-key sgd in the compiled kernels, where it is exact
        if keyed is not None:
            return keyed
        from .classkeyblocks import class_keyed_path

        classes = class_keyed_path(kit)  # per-key logistic in the compiled kernels
        if classes is not None:
            return classes
        from .keyrows import keyed_rows_path

        rows = keyed_rows_path(kit)  # any other model: parsed rows, each key's own step
        if rows is not None:
            return rows
    if not _blocks_possible(kit):
        return RecordByRecord(kit, model)
    if kit.learner.task == "classification":
        from .classblocks import class_path

        return class_path(kit)
    from streamlearn.models.sgd import SGDRegressor

    from . import blocks

    if type(model) is SGDRegressor:
        if not weights_known(kit, model):
            return FirstRecords(kit, model, lambda: weights_known(kit, model))
        if kit.decoder.plain:
            return blocks.CsvBlockPath(kit, model)
        return blocks.JsonBlockPath(kit, model)
    monitor = kit.monitor
    if (
        kit.decoder.plain
        and not isinstance(model, FusedModel)
        and (monitor is None or not monitor.may_change_model)
    ):
        return blocks.RowsBlockPath(kit, model)
    return RecordByRecord(kit, model)


def _blocks_possible(kit: PathKit) -> bool:
    router = kit.router
    return (
        kit.fastpath
        and not kit.compiled.missing
        and isinstance(kit.source, BlockSource)
        and (kit.decoder.plain or isinstance(kit.decoder, JsonDecoder))
        and kit.learner.baseline is None
        and kit.learner.learns  # the kernels learn: --no-learn goes record by record
        and not router.keyed  # one learner per key: record by record
        and router.pseudo is None
        and router.join is None
    )


def weights_known(kit: PathKit, model: LinearModel) -> bool:
    """Whether ``sgd`` holds a weight for every feature of the stream, as blocks need.

    The features are the decoder's (a CSV header, ``--features``), else, for JSON values,
    those of the last record learned.
    """
    features = kit.decoder.features
    last_x = kit.router.last_x
    if features is None and last_x is not None:
        features = list(last_x)
    return features is not None and all(name in model.weights for name in features)


class RecordByRecord:
    """Each record decoded, then routed on its own (``Router``): the path that does everything."""

    name = "record"

    def __init__(self, kit: PathKit, model: object) -> None:
        self.kit = kit
        self.model = model
        #: The decoder's layout when chosen: a header row may change it (blocks again, or not).
        self.plain = kit.decoder.plain

    def fits(self, model: object) -> bool:
        return model is self.model and self.kit.decoder.plain == self.plain

    def take(self, room: int) -> list[Raw] | Block:
        return self.kit.next_records(self.kit.record_want(room))

    def process(self, batch: list[Raw] | Block) -> None:
        self.kit.router.process(batch if isinstance(batch, list) else batch.raws())


class FirstRecords(RecordByRecord):
    """Record by record, a few lines at a time, until the model holds its first weights
    (``known()`` says when: ``sgd``'s for every feature, or a classifier's)."""

    def __init__(self, kit: PathKit, model: object, known: Callable[[], bool]) -> None:
        super().__init__(kit, model)
        self.known = known

    def fits(self, model: object) -> bool:
        return super().fits(model) and not self.known()

    def take(self, room: int) -> list[Raw] | Block:
        return self.kit.next_records(min(self.kit.record_want(room), FIRST_LINES))
