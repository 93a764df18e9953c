"""The group member's metrics: partitions owned, rebalances, restore time, fencing refusals.

Served on ``--metrics-port`` by the member (``streamlearn.scaleout.serve``); read from
``MemberStats`` at each scrape, so the series are exactly what the member counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamlearn.scaleout.member import MemberStats

__all__ = ["member_registry"]


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
            lag = GaugeMetricFamily(
                "streamlearn_partition_lag_records",
                "Records behind the log end per owned partition, as of its latest checkpoint.",
                labels=["partition"],
            )
            for partition, behind in sorted(stats.lag.items()):
                lag.add_metric([str(partition)], behind)
            yield lag
            yield CounterMetricFamily(
                "streamlearn_partition_restore_seconds",
                "Seconds spent taking partitions over (new epoch, previous state carried in).",
                value=stats.restore_seconds,
            )

    registry = CollectorRegistry(auto_describe=True)
    registry.register(Collector())  # type: ignore[arg-type]
    return registry
