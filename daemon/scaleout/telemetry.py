"""The group member's metrics: partitions owned, rebalances, restore time, fencing refusals.

Served on ``--metrics-port`` by the member (``streamlearn.scaleout.serve``); read from
``MemberStats`` at each scrape, so the series are exactly what the member counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from streamlearn.scaleout.member import MemberStats

__all__ = ["member_registry"]


def restore_families(stats: MemberStats) -> Iterator[Metric]:
    """Each owned partition's take-over: its duration (once its learner is ready) and the
    bytes of state carried in. One series per owned partition: bounded by the assignment."""
    from prometheus_client.core import GaugeMetricFamily

    seconds = GaugeMetricFamily(
        "streamlearn_partition_last_restore_seconds",
        "Seconds the partition's take-over took here: the new epoch made, the previous "
        "owner's state carried in, the learner's checkpoint loaded and the partition opened.",
        labels=["topic", "partition"],
    )
    size = GaugeMetricFamily(
        "streamlearn_partition_last_restore_bytes",
        "Bytes of checkpoint and key segments the partition's take-over carried in "
        "(copied or hard-linked from the previous epoch) for the learner to load.",
        labels=["topic", "partition"],
    )
    for partition, restore in sorted(dict(stats.restores).items()):
        labels = [stats.topic, str(partition)]
        size.add_metric(labels, restore.bytes)
        if restore.seconds is not None:
            seconds.add_metric(labels, restore.seconds)
    yield seconds
    yield size


def member_registry(stats: MemberStats) -> object:
    """A ``CollectorRegistry`` whose series read ``stats`` when scraped."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class Collector:
        def collect(self) -> object:
            yield GaugeMetricFamily(
                "streamlearn_partitions_owned",
                "Partitions this instance owns and learns.",
                value=stats.owned,
            )
            yield CounterMetricFamily(
                "streamlearn_rebalances",
                "Partition assignments this instance received from the group.",
                value=stats.rebalances,
            )
            yield CounterMetricFamily(
                "streamlearn_fencing_refusals",
                "Checkpoint writes or offset commits refused: the partition had a newer owner.",
                value=stats.fencing_refusals,
            )
            yield CounterMetricFamily(
                "streamlearn_rebalance_seconds",
                "Seconds in rebalances, from each revoke to the new partitions' learners started.",
                value=stats.rebalance_seconds,
            )
            yield GaugeMetricFamily(
                "streamlearn_last_rebalance_seconds",
                "Seconds the last rebalance took, from its revoke to the learners started.",
                value=stats.last_rebalance_seconds,
            )
            topic = stats.topic
            lag = GaugeMetricFamily(
                "streamlearn_partition_lag_records",
                "Records behind the log end per owned partition, as of its latest checkpoint.",
                labels=["topic", "partition"],
            )
            for partition, behind in sorted(stats.lag.items()):
                lag.add_metric([topic, str(partition)], behind)
            yield lag
            yield CounterMetricFamily(
                "streamlearn_partition_restore_seconds",
                "Seconds spent taking partitions over, from the new epoch made to the "
                "learner's checkpoint loaded.",
                value=stats.restore_seconds,
            )
            yield from restore_families(stats)

    registry = CollectorRegistry(auto_describe=True)
    registry.register(Collector())  # type: ignore[arg-type]
    return registry
