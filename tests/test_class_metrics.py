"""The class metrics (``streamlearn.classify.metrics``) equal River's metric objects fed the
same (label, probabilities) pairs: per record, in bulk from numpy arrays, and over a window."""

from __future__ import annotations

import random

import numpy as np
import pytest
from river import metrics as rm
from river import utils

from streamlearn.classify.metrics import ClassMetrics, Window, score


def _binary_stream(n: int, seed: int) -> list[tuple[int, tuple[float, float]]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = rng.random()
        if i % 17 == 0:
            p = rng.choice([0.0, 1.0, 0.5, 1e-17, 1 - 1e-17, 0.1111111, 0.8888889])
        y = int(rng.random() < 0.3 + 0.5 * p)
        out.append((y, (1.0 - p, p)))
    return out


def _river_binary(pairs: list[tuple[int, tuple[float, float]]]) -> dict[str, object]:
    labels = {"accuracy": rm.Accuracy(), "f1": rm.F1(), "confusion": rm.ConfusionMatrix()}
    probas = {"log_loss": rm.LogLoss(), "roc_auc": rm.ROCAUC()}
    for y, (p0, p1) in pairs:
        proba = {False: p0, True: p1}
        chosen = max(proba, key=proba.get)
        for metric in labels.values():
            metric.update(bool(y), chosen)
        for metric in probas.values():
            metric.update(bool(y), proba)
    out: dict[str, object] = {
        name: m.get() for name, m in {**labels, **probas}.items() if name != "confusion"
    }
    cm = labels["confusion"]
    out["confusion"] = {
        int(t): {int(p): int(c) for p, c in row.items() if c} for t, row in cm.data.items()
    }
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_binary_metrics_equal_river_to_the_last_bit(seed: int) -> None:
    pairs = _binary_stream(2000, seed)
    ours = ClassMetrics(binary=True)
    for y, proba in pairs:
        ours.update(*score(y, proba, binary=True))
    river = _river_binary(pairs)
    values = ours.values()
    for name in ("accuracy", "log_loss", "f1", "roc_auc"):
        assert values[name] == river[name], name  # the same bits
    assert ours.confusion_counts() == river["confusion"]


def test_binary_metrics_agree_record_by_record() -> None:
    pairs = _binary_stream(60, 5)
    ours = ClassMetrics(binary=True)
    river = {"a": rm.Accuracy(), "l": rm.LogLoss(), "f": rm.F1(), "r": rm.ROCAUC()}
    for y, (p0, p1) in pairs:
        ours.update(*score(y, (p0, p1), binary=True))
        proba = {False: p0, True: p1}
        chosen = max(proba, key=proba.get)
        river["a"].update(bool(y), chosen)
        river["f"].update(bool(y), chosen)
        river["l"].update(bool(y), proba)
        river["r"].update(bool(y), proba)
        v = ours.values()
        assert (v["accuracy"], v["log_loss"], v["f1"], v["roc_auc"]) == (
            river["a"].get(),
            river["l"].get(),
            river["f"].get(),
            river["r"].get(),
        )


def _multiclass_stream(n: int, k: int, seed: int) -> list[tuple[int, tuple[float, ...], bool]]:
    """Labels among ``k`` classes; some probability vectors leave the true class unlisted."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        raw = [rng.random() ** 3 for _ in range(k)]
        if i % 11 == 0:
            raw[rng.randrange(k)] = 0.0
        total = sum(raw)
        proba = tuple(v / total for v in raw)
        y = rng.randrange(k)
        out.append((y, proba, i % 23 != 0))
    return out


def _river_multiclass(stream: list[tuple[int, tuple[float, ...], bool]]) -> dict[str, object]:
    acc, f1, ce, cm = rm.Accuracy(), rm.MacroF1(), rm.CrossEntropy(), rm.ConfusionMatrix()
    for y, proba, listed in stream:
        label = f"c{y}"
        named = {f"c{c}": p for c, p in enumerate(proba) if listed or c != y}
        chosen = max(named, key=named.get)
        acc.update(label, chosen)
        f1.update(label, chosen)
        cm.update(label, chosen)
        ce.update(label, named)
    return {"accuracy": acc.get(), "macro_f1": f1.get(), "cross_entropy": ce.get(), "cm": cm}


def _our_multiclass(stream: list[tuple[int, tuple[float, ...], bool]]) -> ClassMetrics:
    ours = ClassMetrics(binary=False)
    for y, proba, listed in stream:
        named = [c for c in range(len(proba)) if listed or c != y]
        choice = max(named, key=lambda c: proba[c])
        ours.update(*score(y, proba, binary=False, choice=choice, listed=listed))
    return ours


@pytest.mark.parametrize("seed", [1, 2])
def test_multiclass_metrics_equal_river(seed: int) -> None:
    stream = _multiclass_stream(3000, 7, seed)
    ours, river = _our_multiclass(stream), _river_multiclass(stream)
    values = ours.values()
    assert values["accuracy"] == river["accuracy"]
    assert values["cross_entropy"] == river["cross_entropy"]  # River: an unlisted class adds 0
    # River sums the per-class F1 in the order of a set of labels: equal up to that order.
    assert values["macro_f1"] == pytest.approx(river["macro_f1"], rel=1e-15, abs=0)
    cm = river["cm"]
    assert ours.confusion_counts() == {
        int(t[1:]): {int(p[1:]): int(c) for p, c in row.items() if c} for t, row in cm.data.items()
    }


def test_bulk_update_gives_the_same_bits_as_record_by_record() -> None:
    pairs = _binary_stream(3000, 9)
    one = ClassMetrics(binary=True)
    for y, proba in pairs:
        one.update(*score(y, proba, binary=True))
    bulk = ClassMetrics(binary=True)
    ys = np.array([y for y, _ in pairs], dtype=np.int64)
    probas = np.array([proba for _, proba in pairs], dtype=np.float64)
    for start in range(0, len(pairs), 700):  # blocks of uneven size, one after the other
        bulk.update_many(ys[start : start + 700], probas[start : start + 700])
    assert bulk.values() == one.values()
    assert bulk.confusion == one.confusion and bulk.scored == one.scored

    stream = _multiclass_stream(2000, 5, 4)
    single = ClassMetrics(binary=False)
    for y, proba, _ in stream:
        single.update(*score(y, proba, binary=False))
    many = ClassMetrics(binary=False)
    many.update_many(
        np.array([y for y, _, _ in stream]), np.array([p for _, p, _ in stream], dtype=np.float64)
    )
    assert many.values() == single.values() and many.confusion == single.confusion


def test_the_kernel_may_hand_over_the_loss_mean() -> None:
    pairs = _binary_stream(100, 3)
    ours = ClassMetrics(binary=True)
    ys = np.array([y for y, _ in pairs], dtype=np.int64)
    ours.update_many(ys, np.array([p for _, p in pairs]), loss=(100.0, 0.25))
    assert ours.values()["log_loss"] == 0.25 and ours.scored == 100


def test_rolling_metrics_equal_rivers_rolling_on_counts() -> None:
    pairs = _binary_stream(500, 7)
    window = Window(100)
    rolling_auc = utils.Rolling(rm.ROCAUC, window_size=100)
    rolling_acc = utils.Rolling(rm.Accuracy, window_size=100)
    rolling_f1 = utils.Rolling(rm.F1, window_size=100)
    for y, (p0, p1) in pairs:
        window.add(*score(y, (p0, p1), binary=True))
        proba = {False: p0, True: p1}
        rolling_auc.update(bool(y), proba)
        rolling_acc.update(bool(y), max(proba, key=proba.get))
        rolling_f1.update(bool(y), max(proba, key=proba.get))
    values = window.metrics(binary=True).values()
    assert values["roc_auc"] == rolling_auc.get()
    assert values["accuracy"] == rolling_acc.get()
    assert values["f1"] == rolling_f1.get()
    # The rolling log loss is the mean of the window's losses, added afresh (River reverts a
    # running mean: the last bits differ).
    last = [score(y, p, binary=True)[2] for y, p in pairs[-100:]]
    assert values["log_loss"] == pytest.approx(sum(last) / 100, rel=1e-12)


def test_nothing_scored_reads_none() -> None:
    assert ClassMetrics(binary=True).values() == dict.fromkeys(
        ["accuracy", "log_loss", "f1", "roc_auc"]
    )
    assert ClassMetrics(binary=False).confusion_counts() == {}
