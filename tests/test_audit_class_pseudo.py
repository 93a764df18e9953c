"""Issue 13, point 7: when true labels come for pseudo-labeled records, the audit reports the
accuracy of the accepted and of the rejected pseudo-labels, per class.

A scripted teacher gives ``yes`` when ``u > 0`` with confidence ``0.5 + |u|``; the truth is
``yes`` when ``u > 0.3``. So every confident vote (``|u| >= 0.4``, the default threshold
0.9) is right, and the teacher is wrong exactly for ``0 < u <= 0.3``, where it is unsure.
The oracle counts, per class the teacher gave, the votes and the right ones over every
late-labeled record; the audit must split them into accepted and rejected and add up.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from streamlearn.app import build
from streamlearn.classify.space import ClassSpace
from streamlearn.config import Settings
from streamlearn.drift.config import DriftSettings
from streamlearn.labels.classteachers import ClassVote
from streamlearn.labels.settings import PseudoSettings

N, DELAY, TAIL = 3000, 50, 200


class Scripted:
    """A teacher that never learns: ``yes`` for ``u > 0``, as sure as ``0.5 + |u|``."""

    name, learned, ready, target_std = "scripted", 1000, True, None

    def learn(self, x: dict[str, float], y: float) -> None: ...

    def use_classes(self, classes: ClassSpace) -> None:
        self.classes = classes

    def vote(self, xs: list[dict[str, float]]) -> list[ClassVote]:
        code = {label: int(self.classes.encode(label)) for label in ("no", "yes")}
        return [
            ClassVote(code["yes" if x["u"] > 0 else "no"], min(1.0, 0.5 + abs(x["u"])), None)
            for x in xs
        ]


def _stream(path: Path) -> dict[str, list[bool]]:
    """The CSV (10 % labeled; every other record's label DELAY records later, but for the
    last TAIL records, which may still be queued) and, per class the teacher gives, whether
    it is right, for each late-labeled record."""
    rng = random.Random(1)
    lines, waiting, oracle = ["id,u,v,label"], [], {"no": [], "yes": []}
    for i in range(N):
        u, v = rng.uniform(-1, 1), rng.uniform(-1, 1)
        truth = "yes" if u > 0.3 else "no"
        if rng.random() < 0.1:
            lines.append(f"r{i},{u:.6f},{v:.6f},{truth}")
        else:
            lines.append(f"r{i},{u:.6f},{v:.6f},")
            if i < N - TAIL:
                waiting.append((i + DELAY, f"r{i}", truth))
                given = "yes" if float(f"{u:.6f}") > 0 else "no"
                oracle[given].append(given == truth)
        while waiting and waiting[0][0] <= i:
            _, rid, due = waiting.pop(0)
            lines.append(f"{rid},,,{due}")
    path.write_text("\n".join(lines) + "\n")
    return oracle


def _run(path: Path) -> dict[str, Any]:
    settings = Settings(
        source=str(path), follow=False, target="label", id_column="id", model="logistic",
        lr=0.05, drift=DriftSettings(drift_detector="none"),
        pseudo=PseudoSettings(
            pseudo_label=True, pseudo_window=20, pseudo_guard=False, deterministic=True,
            label_ttl="100000r",
        ),
    )  # fmt: skip
    app = build(settings)
    assert app.daemon.pseudo is not None
    teacher = Scripted()
    teacher.use_classes(app.daemon.learner.classes)  # type: ignore[attr-defined]
    app.daemon.pseudo.teacher = teacher  # type: ignore[assignment]
    try:
        summary: dict[str, Any] = app.daemon.run()
    finally:
        app.close()
    return summary


@pytest.mark.slow
def test_the_audit_gives_accepted_and_rejected_accuracy_per_class(tmp_path: Path) -> None:
    oracle = _stream(tmp_path / "s.csv")
    labels = _run(tmp_path / "s.csv")["pseudo_labels"]
    by_class = labels["audit_by_class"]
    assert set(by_class) == {"no", "yes"}
    for name, right in oracle.items():
        row = by_class[name]
        assert row["accepted"] > 50 and row["rejected"] > 50, row
        assert row["accepted"] + row["rejected"] == len(right)
        assert row["accepted_accuracy"] == 1.0  # only confident votes pass, and they are right
        hits = (
            row["accepted"] * row["accepted_accuracy"] + row["rejected"] * row["rejected_accuracy"]
        )
        assert round(hits) == sum(right)
    # The teacher's unsure yes votes are the wrong ones: the rejected yes, not the rejected no.
    assert by_class["no"]["rejected_accuracy"] == 1.0
    assert by_class["yes"]["rejected_accuracy"] < 0.8
    assert labels["audited"] + labels["audited_rejected"] == sum(map(len, oracle.values()))
    assert labels["audit_accuracy"] == 1.0 and labels["audit_accuracy_rejected"] < 1.0


def test_a_classifiers_queue_is_bounded_and_its_overflow_counted() -> None:
    """The queue bound works as for regression: the oldest records beyond it are rejected
    (``overflow``, with no class, so in no class's count), every record counted once."""
    from river import linear_model

    from streamlearn.classify.learner import ClassLearner
    from streamlearn.labels.classpseudo import ClassPseudoLabeler
    from streamlearn.records import Record
    from streamlearn.sources.base import Raw

    space = ClassSpace(binary=True)
    teacher = Scripted()
    pseudo = ClassPseudoLabeler(
        teacher, space, window=50, queue_size=50, max_fraction=1.0, deterministic=True
    )

    class Host:
        learner = ClassLearner(linear_model.LogisticRegression(), space)
        telemetry, records_seen = None, 0

    for label in ["no", "yes"] * 10:  # the true labels: half and half
        pseudo.observe_labeled({"u": 0.0}, space.encode(label), (0.5, 0.5), Host)
    for i in range(500):  # one batch of 500 unlabeled records, all confident
        x = {"u": 0.95 if i % 2 else -0.95, "v": 0.0}
        pseudo.offer(Record(x, None, None, Raw(b"", i)), (0.5, 0.5), i)
    assert len(pseudo.pending) == 50  # memory stays bounded by the queue
    pseudo.flush(Host)
    labels = pseudo.summary()["pseudo_labels"]
    assert labels["rejected_by_reason"] == {"overflow": 450}
    assert labels["accepted"] == 50 and labels["accepted_by_class"] == {"no": 25, "yes": 25}
    assert labels["offered"] == labels["accepted"] + labels["rejected"] == 500
    assert Host.learner.pseudo_learned == 50
