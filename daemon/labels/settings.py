"""What ``--pseudo-*``, ``--teacher*``, ``--label-ttl`` and ``--max-pending-labels`` ask for, typed.

The fields are named as the options' parameters (``--pseudo-window`` is ``pseudo_window``),
so a TOML key, a flag and a field are one name. ``build_pseudo`` checks them together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from streamlearn.labels.join import DEFAULT_MAX_PENDING

__all__ = ["PseudoSettings", "PseudoSettingsError"]


class PseudoSettingsError(ValueError):
    """Pseudo-label or join settings that cannot work; ``field`` is the setting to change."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class PseudoSettings:
    """The pseudo-label side loop and the delayed-label join, as the options set them.

    Examples
    --------
    >>> settings = PseudoSettings.from_params({"pseudo_label": True, "label_ttl": None, "lr": 0.1})
    >>> settings.pseudo_label, settings.pseudo_window, settings.label_ttl
    (True, 100, None)
    """

    #: Learn unlabeled records from the teacher's confident pseudo-labels (and join late labels).
    pseudo_label: bool = False
    #: Unlabeled records waiting for a decision.
    pseudo_queue: int = 10_000
    #: Least teacher confidence accepted, in ``[0, 1]``; None: 0.8 for a regressor (the
    #: teacher's ``1 - u/s``), 0.9 for a classifier (the probability of the class).
    pseudo_threshold: float | None = None
    #: Sample weight of an accepted pseudo-label, in ``(0, 1]``.
    pseudo_weight: float = 0.5
    #: Unlabeled records decided together, most confident first.
    pseudo_window: int = 100
    #: At most this fraction of each window is accepted.
    pseudo_max_fraction: float = 0.5
    #: Pause pseudo-labeling, serving the student's twin, when they hurt (``labels.effect``).
    pseudo_guard: bool = True
    #: The guard acts when the student's MAE is above ``(1 + margin)`` times its twin's (a
    #: classifier: when its accuracy is more than ``margin`` below its twin's).
    pseudo_guard_margin: float = 0.05
    #: True labels the guard judges on (and the rolling window of the effect; a classifier's
    #: classes' shares are those of the last as many true labels).
    pseudo_guard_records: int = 500
    #: Who pseudo-labels (``streamlearn.labels.teachers.build_teacher``).
    teacher: str = "committee"
    #: Whether ``teacher`` was given (flag, variable or file); if not, a restored side loop
    #: keeps the checkpoint's teacher.
    teacher_from_flag: bool = False
    #: A ``warm:FILE`` teacher may be a pickle (``--trust-pickle``, shared with the warm start).
    trust_pickle: bool = False
    #: Committee size.
    teacher_k: int = 5
    #: Decide on the loop thread (True) or a side thread (False); None: True unless following.
    deterministic: bool | None = None
    #: How long features wait for their label (``600s``, ``5000r``); None: the join is off
    #: unless pseudo-labeling or the restored state needs it.
    label_ttl: str | None = None
    #: Most features kept waiting for a label.
    max_pending_labels: int = DEFAULT_MAX_PENDING

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PseudoSettings:
        """The settings among a command's parameters; other keys, and None values, are left."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names and v is not None})
