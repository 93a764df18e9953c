"""Pseudo-labels for a classifier, the seed's way: a class kept when its probability passes
the threshold, each class within its share of the true labels, audited per class.

The streams are small and seeded: a binary one and a three-class one, well separated, with
most labels blanked and some of the blanked records' labels coming later by id (the audit).
Where pseudo-labels help, the model learns faster than from its few true labels; where a
teacher is confidently wrong, they hurt, and the audit says which classes it gets wrong.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import pytest

from streamhelpers import cli, inspect_json
from streamlearn.app import build
from streamlearn.classify.learner import ClassLearner
from streamlearn.classify.space import ClassSpace
from streamlearn.config import Settings
from streamlearn.drift.config import DriftSettings
from streamlearn.labels import classpseudo
from streamlearn.labels.classpseudo import ClassPseudoLabeler
from streamlearn.labels.classteachers import ClassCommitteeTeacher, ClassVote
from streamlearn.labels.classwindow import class_quotas
from streamlearn.labels.settings import PseudoSettings
from streamlearn.loop.daemon import RunOptions
from streamlearn.models.registry import build_model
from streamlearn.observe.pseudo_metrics import pseudo_effect_families
from streamlearn.records import Record
from streamlearn.sources.base import Raw

#: A slow student (small --lr) and a quick teacher: what the teacher knows early, the
#: student learns from its pseudo-labels many records before its own few true labels.
SLOW, QUICK = "0.01", "logistic(lr=0.5)"
CENTERS = {"a": (1.0, 0.0), "b": (-0.5, 0.866), "c": (-0.5, -0.866)}


def _stream(
    path: Path, draw: Any, n: int = 6000, labeled: float = 0.02, late: float = 0.05, seed: int = 0
) -> None:
    """``n`` records ``id,u,v,label`` from ``draw(rng) -> (u, v, label)``: a ``labeled``
    share keep their label, a ``late`` share of the others get it 300 records later (a row
    of only id and label). A three-class stream starts with one labeled record of each
    class: its class space is whole before the first prediction (see ``test_a_replay_is_
    the_same_at_every_batch_size``)."""
    rng = random.Random(seed)
    lines, waiting = ["id,u,v,label"], []
    if draw is _three:
        lines += [f"s{i},{u},{v},{label}" for i, (label, (u, v)) in enumerate(CENTERS.items())]
    for i in range(n):
        u, v, label = draw(rng)
        if rng.random() < labeled:
            lines.append(f"r{i},{u:.6f},{v:.6f},{label}")
            continue
        lines.append(f"r{i},{u:.6f},{v:.6f},")
        if rng.random() < late:
            waiting.append((i + 300, f"r{i}", label))
        while waiting and waiting[0][0] <= i:
            _, rid, due = waiting.pop(0)
            lines.append(f"{rid},,,{due}")
    lines += [f"{rid},,,{due}" for _, rid, due in waiting]
    path.write_text("\n".join(lines) + "\n")


def _binary(rng: random.Random, yes: float = 0.5) -> tuple[float, float, str]:
    """yes/no by the sign of 2u - v, kept away from the boundary (well separated)."""
    while True:
        u, v = rng.uniform(-1, 1), rng.uniform(-1, 1)
        margin = 2 * u - v
        if abs(margin) >= 0.2 and (margin > 0) == (rng.random() < yes):
            return u, v, "yes" if margin > 0 else "no"


def _three(rng: random.Random) -> tuple[float, float, str]:
    label = rng.choice("abc")
    cu, cv = CENTERS[label]
    return cu + rng.gauss(0, 0.35), cv + rng.gauss(0, 0.35), label


def _replay(path: Path, state: Path, *extra: str) -> dict[str, Any]:
    cli(
        "replay", str(path), "--target", "label", "--id-column", "id", "--model", "logistic",
        "--lr", SLOW, "--state-dir", str(state), "--drift-detector", "none",
        "--label-ttl", "100000r", *extra,
        timeout=300,
    )  # fmt: skip
    return inspect_json(state)


@pytest.mark.slow
def test_confident_pseudo_labels_help_a_slow_classifier(tmp_path: Path):
    path = tmp_path / "binary.csv"
    _stream(path, _binary)
    plain = _replay(path, tmp_path / "plain")
    pseudo = _replay(path, tmp_path / "pseudo", "--pseudo-label", "--teacher", f"committee:{QUICK}")
    labels = pseudo["pseudo_labels"]
    assert labels["task"] == "classification" and labels["threshold"] == 0.9  # the default
    assert labels["accepted"] > 1000
    assert labels["offered"] == labels["accepted"] + labels["rejected"]  # none left queued
    assert sum(labels["rejected_by_reason"].values()) == labels["rejected"]
    # The true labels are the same; the model that also learned pseudo-labels predicts
    # them better, prequentially.
    assert pseudo["records_learned"] == plain["records_learned"]
    assert pseudo["metrics"]["accuracy"] > plain["metrics"]["accuracy"] + 0.01
    # Its twin learned only the true labels, from the first record: it is the plain run.
    effect = labels["effect"]
    assert effect["measured"] == plain["records_learned"]
    assert effect["accuracy_without"] == plain["metrics"]["accuracy"]
    assert effect["accuracy_with"] == pseudo["metrics"]["accuracy"]
    assert effect["accuracy_difference"] > 0.01 and effect["guard"]["pauses"] == 0
    # The audit: the late labels of accepted records agree with their pseudo-labels.
    assert labels["audited"] > 50 and labels["audit_accuracy"] == 1.0
    assert set(labels["audit_by_class"]) == {"no", "yes"}
    assert sum(row["accepted"] for row in labels["audit_by_class"].values()) == labels["audited"]
    # Prometheus: accuracy with and without, as inspect says.
    (values, difference, *_) = pseudo_effect_families(effect)
    assert values.name == "streamlearn_pseudo_effect_accuracy"
    samples = {(s.labels["model"], s.labels["window"]): s.value for s in values.samples}
    assert samples["without_pseudo_labels", "cumulative"] == plain["metrics"]["accuracy"]
    assert difference.samples[0].value == effect["accuracy_difference"]


class Swapping:
    """A teacher confidently wrong on classes b and c: an honest one's votes, b and c swapped."""

    target_std = None

    def __init__(self, honest: Any) -> None:
        self.honest, self.name = honest, f"swapping {honest.name}"

    @property
    def learned(self) -> int:
        return self.honest.learned

    @property
    def ready(self) -> bool:
        return self.honest.ready

    def learn(self, x: dict[str, float], y: float) -> None:
        self.honest.learn(x, y)

    def use_classes(self, classes: ClassSpace) -> None:
        self.honest.use_classes(classes)

    def vote(self, xs: list[dict[str, float]]) -> list[ClassVote]:
        space = self.honest.classes
        out = []
        for vote in self.honest.vote(xs):
            if vote.refusal is None:
                label = {"b": "c", "c": "b"}.get(space.label(vote.code), space.label(vote.code))
                vote = vote._replace(code=int(space.encode(label)))
            out.append(vote)
        return out


def _settings(path: Path, pseudo: bool, **knobs: Any) -> Settings:
    model = knobs.pop("model", "softmax")
    knobs.setdefault("label_ttl", "100000r")  # the join on, with or without pseudo-labels
    return Settings(
        source=str(path),
        follow=False,
        target="label",
        id_column="id",
        model=model,
        lr=0.01,
        batch_size=knobs.pop("batch_size", RunOptions().batch_size),
        predictions=knobs.pop("predictions", None),
        state_dir=knobs.pop("state_dir", None),
        drift=DriftSettings(drift_detector="none"),
        pseudo=PseudoSettings(
            pseudo_label=pseudo, teacher=knobs.pop("teacher", "softmax(lr=0.5)"), **knobs
        ),
    )


def _run(settings: Settings, swap: bool = False) -> tuple[dict[str, Any], Any]:
    app = build(settings)
    if swap:
        assert app.daemon.pseudo is not None
        app.daemon.pseudo.teacher = Swapping(app.daemon.pseudo.teacher)
    try:
        summary = app.daemon.run()
    finally:
        app.close()
    return summary, app.daemon.learner.model


@pytest.mark.slow
def test_a_teacher_confidently_wrong_hurts_and_the_audit_names_its_classes(tmp_path: Path):
    path = tmp_path / "three.csv"
    _stream(path, _three)
    plain, _ = _run(_settings(path, False))
    honest, _ = _run(_settings(path, True, pseudo_guard=False))
    wrong, _ = _run(_settings(path, True, pseudo_guard=False), swap=True)
    accuracy = plain["metrics"]["accuracy"]
    assert honest["metrics"]["accuracy"] > accuracy  # they help
    assert wrong["metrics"]["accuracy"] < accuracy - 0.2  # they hurt
    for run in (honest, wrong):
        assert run["pseudo_labels"]["effect"]["accuracy_without"] == accuracy  # the twin
    # The audit tells them apart: the accepted labels of the honest teacher are right, the
    # swapping teacher's right for a only.
    good, bad = honest["pseudo_labels"], wrong["pseudo_labels"]
    assert good["audit_accuracy"] == 1.0 and bad["audit_accuracy"] < 0.5
    assert {c: row["accepted_accuracy"] for c, row in good["audit_by_class"].items()} == {
        "a": 1.0, "b": 1.0, "c": 1.0
    }  # fmt: skip
    assert {c: row["accepted_accuracy"] for c, row in bad["audit_by_class"].items()} == {
        "a": 1.0, "b": 0.0, "c": 0.0
    }  # fmt: skip
    assert set(bad["audit_confusion"]["b"]) == {"c"} and set(bad["audit_confusion"]["c"]) == {"b"}
    # With the guard on, the swapped pseudo-labels are paused and the twin serves.
    guarded, _ = _run(_settings(path, True, pseudo_guard_records=100), swap=True)
    guard = guarded["pseudo_labels"]["effect"]["guard"]
    assert guard["pauses"] >= 1 and guarded["pseudo_labels"]["rejected_by_reason"]["guard_paused"]
    assert (
        guard["events"][0]["window_accuracy_with"] < guard["events"][0]["window_accuracy_without"]
    )
    assert guarded["metrics"]["accuracy"] > wrong["metrics"]["accuracy"] + 0.2
    guarded_honest, _ = _run(_settings(path, True, pseudo_guard_records=100))
    assert guarded_honest["pseudo_labels"]["effect"]["guard"]["pauses"] == 0


def test_class_quotas_are_the_largest_total_within_every_share():
    """``class_quotas`` against a brute-force search over every total up to the cap."""
    rng = random.Random(7)
    for _ in range(2000):
        k = rng.randint(1, 4)
        counts = [rng.choice([0, rng.randint(1, 60)]) for _ in range(k)]
        confident = {c: rng.randint(0, 40) for c in range(k) if rng.random() < 0.8}
        cap = rng.randint(0, 60)
        quotas, total = class_quotas(confident, counts, cap)
        n = sum(counts)
        if n == 0:
            assert (quotas, total) == ({}, 0)
            continue
        fits = [
            t
            for t in range(cap + 1)
            if all(n_c * t // n <= confident.get(c, 0) for c, n_c in enumerate(counts) if n_c)
        ]
        assert total == max(fits)
        assert quotas == {c: n_c * total // n for c, n_c in enumerate(counts) if n_c}
        for c, quota in quotas.items():
            assert quota <= confident.get(c, 0) and quota * n <= counts[c] * cap


def test_each_window_keeps_every_class_within_its_share(tmp_path: Path, monkeypatch):
    path = tmp_path / "imbalanced.csv"
    _stream(path, lambda rng: _binary(rng, yes=0.2), labeled=0.05, late=0.0)
    windows: list[tuple[list[int], int, list[Any]]] = []
    decide = classpseudo.decide_class_window

    def seen(window: Any, size: int | None, **kwargs: Any) -> Any:
        verdicts = decide(window, size, **kwargs)
        cap = int(kwargs["max_fraction"] * (size or len(window)) + 1e-9)
        windows.append((list(kwargs["counts"]), cap, verdicts))
        return verdicts

    monkeypatch.setattr(classpseudo, "decide_class_window", seen)
    summary, _ = _run(_settings(path, True, model="logistic", teacher=f"committee:{QUICK}"))
    judged = 0
    for counts, cap, verdicts in windows:
        n = sum(counts)
        confident: dict[int, int] = {}
        accepted: dict[int, int] = {}
        for verdict in verdicts:
            if verdict.confidence is not None and verdict.confidence >= 0.9:
                code = int(verdict.label)
                confident[code] = confident.get(code, 0) + 1
                accepted[code] = accepted.get(code, 0) + verdict.accept
        if not confident:
            continue
        judged += 1
        total = max(  # the brute-force total (see the test above)
            t
            for t in range(cap + 1)
            if all(n_c * t // n <= confident.get(c, 0) for c, n_c in enumerate(counts) if n_c)
        )
        for code, taken in accepted.items():
            share = counts[code] if code < len(counts) else 0
            assert taken == share * total // n  # its share of the window, rounded down
            assert taken * n <= share * cap
    assert judged >= 50
    labels = summary["pseudo_labels"]
    shares, by_class = labels["class_shares"], labels["accepted_by_class"]
    assert 0.15 < shares["yes"] < 0.25
    assert by_class["yes"] / labels["accepted"] <= shares["yes"] + 0.02
    assert labels["rejected_by_reason"].get("class_share", 0) > 0


def test_a_teacher_that_names_one_class_of_two_accepts_nothing():
    space = ClassSpace(binary=True)

    class OneClass:
        name, learned, ready, target_std = "always no", 100, True, None

        def learn(self, x: dict[str, float], y: float) -> None: ...

        def use_classes(self, classes: ClassSpace) -> None: ...

        def vote(self, xs: list[dict[str, float]]) -> list[ClassVote]:
            return [ClassVote(0, 1.0, None) for _ in xs]

    pseudo = ClassPseudoLabeler(OneClass(), space, window=10)
    for i, label in enumerate(["no", "yes"] * 10):  # true labels: half and half
        pseudo._teach({"u": float(i)}, space.encode(label))
    verdicts = pseudo._decide([_candidate(i) for i in range(10)], 10)
    assert [v.accept for v in verdicts] == [False] * 10
    assert {v.reason for v in verdicts} == {"class_share"}


def _candidate(i: int) -> Any:
    from streamlearn.labels.window import Candidate

    return Candidate(i, None, {"u": float(i)}, (0.5, 0.5))


def test_a_committee_that_disagrees_accepts_nothing():
    space = ClassSpace(binary=True)
    space.encode("no"), space.encode("yes")
    teacher = ClassCommitteeTeacher("logistic", space, k=3, warmup=1)
    teacher.learned = 1
    for member, weight in zip(teacher.members, (8.0, 8.0, -8.0), strict=True):
        member.weights = {"u": weight}  # two say yes for u > 0, one says no
    xs = [{"u": 1.0}, {"u": -1.0}, {"u": 0.5}]
    assert [vote.refusal for vote in teacher.vote(xs)] == ["disagreement"] * 3
    pseudo = ClassPseudoLabeler(teacher, space, window=3, max_fraction=1.0, threshold=0.5)
    pseudo.shares.add(0, 10), pseudo.shares.add(1, 10)

    class Host:
        learner = ClassLearner(build_model("logistic"), space)
        telemetry, records_seen = None, 0

    for i, x in enumerate(xs):
        pseudo.offer(Record(x, None, None, Raw(b"", i)), (0.5, 0.5), i, Host)
    assert pseudo.accepted == 0 and pseudo.rejected_by_reason == {"disagreement": 3}
    assert Host.learner.pseudo_learned == 0
    # Agreeing, each member must be above the threshold: the least sure one decides.
    teacher.members[2].weights = {"u": 1.0}  # agrees, but with p(yes | u=1) = 0.73
    (vote,) = teacher.vote([{"u": 1.0}])
    assert vote.code == 1 and vote.refusal is None
    assert vote.confidence == pytest.approx(1 / (1 + 2.718281828459045**-1.0))


def test_a_replay_is_the_same_at_every_batch_size(tmp_path: Path):
    """Models, predictions, metrics, the audit and the effect, bit for bit.

    The stream names its three classes first. A class first coded by the decoder within a
    batch is in the class space (so in the probability tuples a late label is scored with)
    earlier at a larger batch size, and the cross-entropy of late labels then depends on
    the batch size, with or without pseudo-labels: a defect of the late-label scoring,
    not of the side loop.
    """
    path = tmp_path / "three.csv"
    _stream(path, _three, n=3000)
    runs = []
    for size in (1, 100, RunOptions().batch_size):
        out = tmp_path / f"predictions-{size}.jsonl"
        summary, model = _run(_settings(path, True, batch_size=size, predictions=str(out)))
        summary = json.loads(json.dumps(summary, default=str))
        summary["checkpoint"].pop("created")
        summary.pop("position", None)
        runs.append((summary, pickle.dumps(model), out.read_text()))
    first, *others = runs
    assert first[0]["pseudo_labels"]["accepted"] > 100
    assert first[0]["pseudo_labels"]["audited"] > 10
    for other in others:
        assert other[0] == first[0]
        assert other[1] == first[1]
        assert other[2] == first[2]


def test_a_resumed_run_carries_on_with_its_side_loop(tmp_path: Path):
    """A threaded side loop pickles its teacher apart: restored, it speaks the learner's space."""
    path = tmp_path / "binary.csv"
    _stream(path, _binary, n=4000)
    lines = path.read_text().splitlines(keepends=True)
    growing, state = tmp_path / "growing.csv", tmp_path / "state"
    growing.write_text("".join(lines[:2000]))
    knobs = {"model": "logistic", "deterministic": False, "state_dir": str(state)}
    summaries = []
    for _ in range(2):
        app = build(_settings(growing, True, **knobs))
        pseudo, learner = app.daemon.pseudo, app.daemon.learner
        assert isinstance(pseudo, ClassPseudoLabeler) and isinstance(learner, ClassLearner)
        assert pseudo.teacher.classes is learner.classes  # type: ignore[attr-defined]
        assert pseudo.effect.classes is learner.classes
        try:
            summaries.append(app.daemon.run())
        finally:
            app.close()
        growing.write_text("".join(lines))
    before, after = (summary["pseudo_labels"] for summary in summaries)
    assert after["mode"] == "threaded" and after["offered"] > before["offered"]
    assert after["teacher_learned"] > before["teacher_learned"]
    assert after["offered"] == after["accepted"] + after["rejected"] + after["queued"]
    assert set(after["class_shares"]) == {"no", "yes"} and after["accepted"] > before["accepted"]
    assert after["effect"]["measured"] > before["effect"]["measured"]
