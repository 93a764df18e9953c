"""Each key's own pseudo-label side loop (``--pseudo-label`` with ``--key-by``).

A key's learner holds its own ``PseudoLabeler`` (``KeyRegressor.pseudo``): its queue,
windows, teacher, twin and guard are pickled with the learner, so they spill and load with
the key, and memory stays bounded by ``--max-live-keys``. A key's labeler is a copy of one
made from the options at start (a ``warm:`` teacher's model A is read once), made the first
time the key learns or predicts with pseudo-labels on. Each key's labeler decides a window
the moment it fills, on the loop thread (``--deterministic``): one side thread per key
would not be bounded. The labelers share the run's delayed-label join, pickled by
reference (the codec's shared ``join``); the audit of a late label goes to the labeler of
the key its features came with (:class:`KeyAudits`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .codec import KeyCodec, LearnerCodec
from .units import KeyClassifier, KeyRegressor

if TYPE_CHECKING:
    from streamlearn.labels.join import LabelJoin, LateLabel
    from streamlearn.labels.pseudo import PseudoLabeler

    from .run import KeyedRun
    from .store import KeyedModels

__all__ = ["JOIN", "KeyAudits", "KeyLabelers", "keyed_pseudo", "share_join"]

#: The codec's shared name of the run's delayed-label join.
JOIN = "join"


def _no_auditor() -> None:
    return None


def share_join(codec: KeyCodec[Any], join: LabelJoin) -> None:
    """Keys' states name ``join`` (their labelers' join) rather than hold a copy of it."""
    if not isinstance(codec, LearnerCodec):
        raise TypeError(f"the keys' codec {type(codec).__name__} cannot share the label join")
    codec.share(JOIN, join)


class KeyAudits:
    """The join's auditor in a keyed run: hands an audit to the labeler of ``key``, the key
    of the late label being joined (the router sets it around ``LabelJoin.take``).

    Never pickled with its store: a checkpointed join comes back without an auditor, and
    the run that resumes it sets a new one.
    """

    def __init__(self, models: KeyedModels[Any]) -> None:
        self.models = models
        self.key: str | None = None

    def audit(self, late: LateLabel) -> None:
        if self.key is None:
            return
        learner = self.models.get(self.key)
        if isinstance(learner, KeyRegressor | KeyClassifier) and learner.pseudo is not None:
            learner.pseudo.audit(late)

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _no_auditor, ()


class KeyLabelers:
    """Makes each key's labeler: a copy of ``prototype``, its join the run's ``join``.

    ``prototype`` is made from the options (``build_pseudo``); it is switched to deciding
    on the loop thread, attached to ``join``, and ``join`` becomes one of the ``codec``'s
    shared objects (every key's labeler names it, none holds a copy).
    """

    def __init__(
        self,
        codec: KeyCodec[Any],
        models: KeyedModels[Any],
        prototype: PseudoLabeler,
        join: LabelJoin | None,
    ) -> None:
        prototype.close()
        prototype.deterministic = True
        prototype.attach(join)
        self.audits: KeyAudits | None = None
        if join is not None:
            share_join(codec, join)
            self.audits = KeyAudits(models)
            join.auditor = self.audits
        self._codec = codec
        self._blob = codec.dump(prototype)
        #: What a new key's labeler is called (``inspect``).
        self.teacher = prototype.teacher.name

    def new(self) -> PseudoLabeler:
        """A key's labeler, as the options make it."""
        labeler: PseudoLabeler = self._codec.load(self._blob)
        return labeler

    def of(self, learner: object) -> PseudoLabeler | None:
        """The labeler of a key's ``learner``, made now if it has none (None: not a key's)."""
        if not isinstance(learner, KeyRegressor | KeyClassifier):
            return None
        if learner.pseudo is None:
            learner.pseudo = self.new()
        return learner.pseudo


def keyed_pseudo(
    run: KeyedRun | None, pseudo: PseudoLabeler | None, join: LabelJoin | None
) -> PseudoLabeler | None:
    """The run's pseudo-label loop: ``pseudo``, unless ``run`` is keyed (None: each key gets a
    copy of ``pseudo``). Without pseudo-labels the keys' states may still name ``join`` (a
    resumed run that had them)."""
    if run is None:
        return pseudo
    if pseudo is not None:
        run.labelers = KeyLabelers(run.models.codec, run.models, pseudo, join)
    elif join is not None:
        share_join(run.models.codec, join)
    return None
