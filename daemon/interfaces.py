"""The seams of the run loop: every collaborator it calls, declared as a Protocol.

Only interfaces live here (as Bytewax's ``inputs.py`` and prometheus_client's ``Collector``):
implementations are in their subsystems. An optional ability is declared (a Protocol of its
own, checked with ``isinstance``, or a method every implementation has), never probed with
``getattr``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeVar, runtime_checkable

from streamlearn.observe.seam import Telemetry as Telemetry

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from streamlearn.learner import Learner
    from streamlearn.models.champion import BaselineGuard
    from streamlearn.records import Decoded, Label, Record
    from streamlearn.sources.base import Raw
    from streamlearn.state import Lock


#: A prediction as the loop passes it on: a regressor's value, or a classifier's class
#: probabilities by class code (``streamlearn.classify``).
Prediction = float | tuple[float, ...]


# -- what collaborators may use of the loop ------------------------------------------------


class LearnerLike(Protocol):
    """What the loop's collaborators use of a learner, a regressor's or a classifier's.

    ``streamlearn.learner.Learner`` (regression: predictions are floats) and
    ``streamlearn.classify.learner.ClassLearner`` (classification: class probabilities by
    code). The prequential step itself, whose prediction types differ, belongs to the
    router of each task.
    """

    #: ``"regression"`` or ``"classification"``.
    task: str
    #: Whether the learner learns (False: ``--no-learn``'s evaluator only scores).
    learns: bool
    records_learned: int
    #: Labeled records learned unscored (the model could not predict them yet).
    records_unscored: int
    pseudo_learned: int
    rolling_window: int
    #: The frozen warm-start model A scored beside the model, or None.
    baseline: Any
    #: The feature names the model learned, once ``track_features`` was called.
    feature_names: set[str] | None
    #: With a baseline: the guard that says whether A or the model serves.
    guard: BaselineGuard | None

    @property
    def model(self) -> Any: ...

    def reset_model(self, model: Any) -> None:
        """Swap the model (drift actions, divergence restore); the metrics carry on."""
        ...

    def track_features(self) -> None: ...

    def sound(self, x: dict[str, float]) -> bool:
        """Whether the model predicts ``x`` without a NaN/inf (a diverged model does not)."""
        ...

    def learn_weighted(self, x: dict[str, float], y: float, w: float) -> None:
        """Learn a pseudo-label ``y`` (a target, or a class code) with weight ``w``."""
        ...

    @property
    def window_len(self) -> int: ...

    def rolling_mae(self) -> float | None:
        """The mean prequential error over the rolling window: ``|y - yhat|``, or for a
        classifier the 0/1 error (the divergence guard's level)."""
        ...

    def summary(self) -> Mapping[str, object]:
        """Cumulative metrics by name (``inspect --json``'s ``metrics``)."""
        ...

    def rolling_summary(self) -> Mapping[str, object]: ...

    def baseline_summary(self) -> Mapping[str, object] | None: ...


class ModelHost(Protocol):
    """What a drift monitor or the pseudo-label loop may use of the daemon that calls it.

    The loop passes one to ``observe``/``drain``: the learner whose model they may score,
    replace or teach, the factories of fresh models, and telemetry. They never call back
    into the loop itself.
    """

    @property
    def learner(self) -> LearnerLike: ...

    @property
    def telemetry(self) -> Telemetry | None: ...

    @property
    def model_factory(self) -> Callable[[], Any] | None:
        """A fresh model of the run's spec (a reset), or None."""
        ...

    @property
    def warm_model_factory(self) -> Callable[[], Any] | None:
        """A fresh copy of the warm-start model A, or None without a warm start."""
        ...

    @property
    def records_seen(self) -> int:
        """Records seen so far in the stream (the next record's 0-based index)."""
        ...


# -- input: decoders, blocks, block sources ------------------------------------------------


class Decoder(Protocol):
    """Turns raw bytes into records (``streamlearn.records``): never raises on bad input.

    A CSV decoder maps columns by name and a header row inside the stream changes that
    mapping (its schema); a header of other features than the model's raises
    ``streamlearn.csv_schema.SchemaChanged`` unless its rows are to be dead-lettered.
    """

    @property
    def features(self) -> Sequence[str] | None:
        """The feature names, in column order; None while not known (JSON, no ``--features``)."""
        ...

    @property
    def plain(self) -> bool:
        """True for the plain CSV layout (features, then the target; no id column).

        A header row may change it: the record paths chosen for it are chosen again.
        """
        ...

    def changes_schema(self, raw: Raw) -> bool:
        """Whether ``decode`` would change the columns in force at ``raw`` (a header row).

        It only asks: a block parser stops before such a row, whose rest it cannot read.
        """
        ...

    def schema(self) -> dict[str, list[str]] | None:
        """The columns in force and the model's features, for the checkpoint (None: none)."""
        ...

    def restore_schema(self, schema: Mapping[str, Sequence[str]] | None, /) -> None:
        """Take up a checkpoint's ``schema()``: the columns in force at its position."""
        ...

    def decode(self, raw: Raw) -> Decoded:
        """One item to a Record, a Label, a Rejected, or None (a header, a blank line)."""
        ...

    def decode_batch(self, raws: Sequence[Raw]) -> list[Decoded]:
        """``decode`` of each item, in order (as fast as the format allows)."""
        ...


@runtime_checkable
class Block(Protocol):
    """Whole lines of a source as one byte string, for the compiled block paths.

    ``len()`` counts lines, like the length of a ``next_batch`` list, so the loop paces both
    alike; ``raws()`` are the same lines as ``next_batch`` would have handed out.
    """

    @property
    def data(self) -> bytes: ...

    @property
    def offset(self) -> int:
        """The source offset of the first byte (0 when rows are placed by ``locate``)."""
        ...

    @property
    def lines(self) -> int: ...

    def __len__(self) -> int: ...

    def raws(self) -> list[Raw]: ...


@runtime_checkable
class LocatedBlock(Block, Protocol):
    """A block whose rows are not lines of one file (a Kafka fetch): each has its own place."""

    def locate(self, row: int) -> Raw:
        """The item of line ``row`` as ``next_batch`` hands it out (with its position)."""
        ...


@runtime_checkable
class BlockSource(Protocol):
    """A source that can also hand out whole lines as one ``Block`` (a file, a Kafka topic)."""

    def next_block(self, max_lines: int) -> Block | None:
        """Up to ``max_lines`` lines as a block; None when ``next_batch`` must take over."""
        ...


# -- the compiled block learners -----------------------------------------------------------


class ParsedBlock(Protocol):
    """A block as the compiled parser left it: numbers, row kinds and the decoder's verdicts."""

    @property
    def values(self) -> NDArray[np.float64]:
        """One row per line: the features, then the target (NaN when unlabeled)."""
        ...

    @property
    def status(self) -> NDArray[np.int8]:
        """The kind of each row (``streamlearn.fast.block.LABELED`` ... ``NOTHING``)."""
        ...

    @property
    def judged(self) -> dict[int, Decoded]:
        """The decoder's verdict on each row the parser doubted."""
        ...

    @property
    def rows(self) -> int: ...

    def raw(self, row: int) -> Raw:
        """The item of ``row`` as the record path sees it."""
        ...

    def x(self, row: int, features: Sequence[str]) -> dict[str, float]:
        """The features of ``row`` as the decoder's record dict."""
        ...

    def abs_errors(self, yhat: NDArray[np.float64], rows: NDArray[np.bool_]) -> NDArray[np.float64]:
        """``|y - yhat|`` of the rows the mask ``rows`` selects."""
        ...


class JsonParsedBlock(ParsedBlock, Protocol):
    """A parsed block of JSON values: its rows carry their own feature names and ids."""

    @property
    def features(self) -> list[str]: ...

    def record_id(self, row: int) -> str | None: ...


ParsedT = TypeVar("ParsedT", bound=ParsedBlock)
SavedT = TypeVar("SavedT")
ParsedT_contra = TypeVar("ParsedT_contra", bound=ParsedBlock, contravariant=True)
LearnerT_contra = TypeVar("LearnerT_contra", contravariant=True)
ModelT_contra = TypeVar("ModelT_contra", contravariant=True)


class LinearModel(Protocol):
    """What the compiled kernels read and write of the ``sgd`` model (``SGDRegressor``)."""

    lr: float
    intercept: float
    weights: dict[Any, float]


class BlockLearner(Protocol[ParsedT, SavedT, LearnerT_contra, ModelT_contra]):
    """Parses blocks and learns them into a learner and its model, with the record path's results.

    ``streamlearn.fast.block.BlockLearner`` (plain CSV) and
    ``streamlearn.fast.jsonblock.JsonBlockLearner`` (JSON values) learn into a ``Learner`` of
    ``sgd``; ``streamlearn.fast.classblock.ClassBlockLearner`` into a ``ClassLearner`` of
    ``logistic`` or ``softmax``.
    """

    @property
    def yhat(self) -> NDArray[np.float64]:
        """The prediction of each row the last ``learn`` handled (a classifier's: by class)."""
        ...

    def parse(self, block: Block, decoder: Decoder) -> ParsedT | None:
        """The block parsed; None when it must go record by record (no layout fits)."""
        ...

    def learn(
        self, learner: LearnerT_contra, model: ModelT_contra, parsed: ParsedT, start: int, stop: int
    ) -> int:
        """Learn rows ``start..stop``; returns where it stopped (a row the record path takes)."""
        ...

    def save(self, learner: LearnerT_contra, model: ModelT_contra) -> SavedT:
        """What ``learn`` may change, for ``restore``."""
        ...

    def restore(self, learner: LearnerT_contra, model: ModelT_contra, saved: SavedT) -> None: ...


class BlockScorer(Protocol[ParsedT_contra]):
    """Scores predictions another model made on a parsed block, as ``Learner.step`` would."""

    def score(
        self, learner: Learner, parsed: ParsedT_contra, yhat: NDArray[np.float64], done: int
    ) -> None: ...


# -- models ------------------------------------------------------------------------------------


class Regressor(Protocol):
    """An online regressor as River's: predict one record, learn one record."""

    def predict_one(self, x: dict[str, float]) -> float: ...

    def learn_one(self, x: dict[str, float], y: float) -> object: ...


@runtime_checkable
class FusedModel(Protocol):
    """A model that predicts and learns in one call (the project's own estimators)."""

    def predict_learn_one(self, x: dict[Hashable, Any], y: float) -> float: ...


@runtime_checkable
class WeightedModel(Protocol):
    """A model with a weight per feature (sgd, River's linear models): ``inspect`` shows them."""

    @property
    def weights(self) -> Mapping[str, float]: ...


@runtime_checkable
class InterceptModel(Protocol):
    """A model with an intercept (shown by ``inspect`` beside the weights)."""

    @property
    def intercept(self) -> float: ...


# -- the loop's optional parts, checkpointed beside the model --------------------------------


@runtime_checkable
class StatePart(Protocol):
    """A part of the state checkpointed beside the model (pseudo loop, label join, monitor)."""

    def summary(self) -> dict[str, Any]:
        """Its part of the ``inspect --json`` object (JSON-safe)."""
        ...


@runtime_checkable
class LockedStatePart(StatePart, Protocol):
    """A state part that other threads change under locks."""

    def snapshot_locks(self) -> Sequence[Lock]:
        """The locks a forked checkpoint holds, so the child never copies a half-made change."""
        ...


class Monitor(StatePart, Protocol):
    """The drift monitor (``streamlearn.drift.monitor.DriftMonitor``): watches learned records."""

    @property
    def errors_only(self) -> bool:
        """True when only the error is watched: ``observe_errors`` may replace ``observe``."""
        ...

    @property
    def may_change_model(self) -> bool:
        """False when it can do no more than alert (the model it watches stays)."""
        ...

    def observe(
        self,
        index: int,
        x: Mapping[str, float],
        y: float,
        yhat: float | tuple[float, ...],
        host: ModelHost,
        /,
    ) -> None:
        """One learned record (stream ``index``), after the model learned it: ``yhat`` a
        regressor's value, or a classifier's class probabilities by code (``y`` the code)."""
        ...

    def observe_errors(
        self,
        indices: NDArray[np.int64] | Sequence[int],
        errors: NDArray[np.float64] | Sequence[float],
        host: ModelHost,
        /,
    ) -> int:
        """Many learned records' errors at once; returns how many it saw (it stops at a change)."""
        ...

    def telemetry_labels(self) -> DriftLabels:
        """Keyword arguments for ``Telemetry``: the label values of its drift series."""
        ...


class DriftLabels(TypedDict, total=False):
    """The label values of ``Telemetry``'s drift series, as its keyword arguments."""

    drift_detectors: Sequence[str]
    drift_signals: Sequence[str]
    drift_actions: Sequence[str]


class PendingFeatures(Protocol):
    """Features that waited for their label, with the prediction made when they arrived."""

    @property
    def x(self) -> dict[str, float]: ...

    @property
    def yhat(self) -> Prediction:
        """A regressor's value, or a classifier's class probabilities by code."""
        ...


class LabelJoin(StatePart, Protocol):
    """The late-label join (``streamlearn.labels``): features wait for a label by id."""

    def remember(self, record: Record, yhat: Prediction, index: int, /) -> None:
        """Keep an unlabeled record's features and prediction until its label comes."""
        ...

    def take(self, label: Label, index: int, /) -> PendingFeatures | None:
        """The waiting features of ``label.id`` (removed), or None."""
        ...


class PseudoLoop(LockedStatePart, Protocol):
    """The pseudo-label side loop (``streamlearn.labels``): teaches the model unlabeled records."""

    def offer(self, record: Record, yhat: Prediction, index: int, host: ModelHost, /) -> None:
        """An unlabeled record, after its prediction was written (a full window is learned now)."""
        ...

    def observe_labeled(
        self, x: dict[str, float], y: float, yhat: Prediction, host: ModelHost, /
    ) -> None:
        """A true label the model predicted as ``yhat``, then learned (its twin and the
        teacher learn it too; a late label's ``yhat`` is the prediction made at feature time)."""
        ...

    def drain(self, host: ModelHost, /) -> None:
        """After each batch: learn the pseudo-labels decided meanwhile."""
        ...

    def flush(self, host: ModelHost, /) -> None:
        """At the end of a replay: decide and learn everything still queued."""
        ...


# -- the loop's record paths ---------------------------------------------------------------


class RecordPath(Protocol):
    """One way batches become learning: record by record, or a block at a time.

    ``streamlearn.loop.paths.choose_path`` picks one; the loop asks it again only when the
    path no longer ``fits`` (a named event: the model's first weights, a replaced model,
    the compiled kernels missing, a CSV header row that changed ``Decoder.plain``).
    """

    @property
    def name(self) -> str:
        """``record``, ``csv-block``, ``json-block`` or ``rows-block``."""
        ...

    def fits(self, model: object) -> bool:
        """Whether this path still suits ``model`` and what is known of the kernels."""
        ...

    def take(self, room: int) -> list[Raw] | Block:
        """The next batch; at most ``room`` records when ``room`` > 0 (a checkpoint is due)."""
        ...

    def process(self, batch: list[Raw] | Block) -> None:
        """Learn the batch, write its sinks, report it (under the loop's lock)."""
        ...
