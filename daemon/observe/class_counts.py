"""A classifier's per-class counts as Prometheus counters, read from its confusion matrix when
Prometheus scrapes.

``streamlearn_class_labels_total{class}`` (true labels scored), ``..._predictions_total``
(classes predicted for them) and ``..._correct_total`` (predicted right): the confusion
matrix's rows, columns and diagonal. They cost nothing per record, count the compiled block
path and late labels alike, and equal ``inspect --json``'s ``confusion``. The ``class`` label is
the class text; the class space bounds them (``--max-classes``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from prometheus_client.metrics_core import CounterMetricFamily, Metric

__all__ = [
    "CLASS_COUNTERS",
    "ClassCounts",
    "ClassTally",
    "class_families",
    "class_tallies",
    "label_value",
]


class ClassTally(NamedTuple):
    """The counts of one class: as the true label, as the prediction, and predicted right."""

    label: str
    labels: int
    predictions: int
    correct: int


#: Reads the tallies of every class known (in code order) at scrape time.
ClassCounts = Callable[[], Sequence[ClassTally]]

#: ``(metric name without _total, help)`` of ``ClassTally``'s counts, in its order.
CLASS_COUNTERS: tuple[tuple[str, str], ...] = (
    (
        "streamlearn_class_labels",
        "Labelled records scored, by their true class (the confusion matrix's rows).",
    ),
    (
        "streamlearn_class_predictions",
        "Labelled records scored, by the class predicted for them before learning (the "
        "confusion matrix's columns).",
    ),
    (
        "streamlearn_class_correct",
        "Labelled records predicted right, by class (the confusion matrix's diagonal); "
        "over all classes divided by streamlearn_class_labels_total: the accuracy.",
    ),
)


def label_value(text: str) -> str:
    """A class text as a label value Prometheus and promtool accept: valid UTF-8 (a lone
    surrogate, which no bytes can spell, becomes its ``\\udcxx`` escape); quotes, backslashes
    and newlines are escaped by the exposition itself.

    >>> label_value('dog "big"'), label_value("caf\\udce9")
    ('dog "big"', 'caf\\\\udce9')
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def class_tallies(labels: Sequence[str], confusion: Sequence[Sequence[int]]) -> list[ClassTally]:
    """The tally of each class of ``labels`` (by code) from ``confusion[true][predicted]``;
    a class the matrix has not reached yet counts 0.

    >>> class_tallies(["no", "yes"], [[5, 1], [2, 7]])
    [ClassTally(label='no', labels=6, predictions=7, correct=5), ClassTally(label='yes', labels=9, predictions=8, correct=7)]
    >>> class_tallies(["a", "b", "c"], [[3]])
    [ClassTally(label='a', labels=3, predictions=3, correct=3), ClassTally(label='b', labels=0, predictions=0, correct=0), ClassTally(label='c', labels=0, predictions=0, correct=0)]
    """  # noqa: E501 - doctest output
    size = len(confusion)
    rows = [sum(row) for row in confusion]
    columns = [sum(column) for column in zip(*confusion, strict=True)] if size else []
    return [
        ClassTally(label, rows[code], columns[code], confusion[code][code])
        if code < size
        else ClassTally(label, 0, 0, 0)
        for code, label in enumerate(labels)
    ]


def class_families(tallies: Iterable[ClassTally]) -> list[Metric]:
    """The three counters of ``tallies``, one sample per class."""
    tallies = list(tallies)
    families: list[Metric] = []
    for field, (name, documentation) in enumerate(CLASS_COUNTERS, start=1):
        family = CounterMetricFamily(name, documentation, labels=["class"])
        for tally in tallies:
            family.add_metric([label_value(tally.label)], float(tally[field]))
        families.append(family)
    return families
