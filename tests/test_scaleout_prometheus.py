"""A real Prometheus scrapes the members of a real keyed scale-out group (real broker) with the
shipped rules: every query of the Scale-out row returns the members' series, the partitions
owned add up to the topic's before and after a member is killed, each partition's lag is
there, and StreamlearnPartitionUnowned's condition is empty once the survivor owns all."""

from __future__ import annotations

from pathlib import Path

import pytest
from scaleout_helpers import Instance, keyed_rows, learned, owners, running, send_rows

from deploy_files import RULES, dashboard_queries, load_dashboard, load_rules, substitute
from prom_server import PrometheusServer, require_binary
from streamhelpers import wait_for
from streamlearn.broker import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.prometheus, pytest.mark.slow]


def test_prometheus_follows_the_partitions_of_a_group(
    kafka_bootstrap: str, kafka_topic_factory, kafka_send, tmp_path: Path
) -> None:
    require_binary("prometheus")
    topic = kafka_topic_factory(2)
    state = tmp_path / "shared"
    rows = keyed_rows(400, keys=8, seed=5)
    ports = {"a": free_port(), "b": free_port()}
    unowned = next(
        r["expr"] for r in load_rules() if r.get("alert") == "StreamlearnPartitionUnowned"
    )
    with running({}) as instances:
        send_rows(kafka_send, topic, rows[:200])
        for name, port in ports.items():
            instances[name] = Instance(
                kafka_bootstrap, topic, state, name, tmp_path, metrics_port=port
            )
        wait_for(lambda: set(owners(state).values()) == {"a", "b"}, "a and b own one each", 60)
        wait_for(lambda: learned(state) == 200, "the first 200 learned", 40)
        targets = [f"127.0.0.1:{port}" for port in ports.values()]
        with PrometheusServer(targets, rule_files=[RULES]) as prom:
            prom.wait_until("sum(streamlearn_partitions_owned) == 2", bool, timeout=30)
            lag = 'max by (partition) (streamlearn_partition_lag_records{job="streamlearn"})'
            prom.wait_until(lag, lambda r: len(r) == 2, timeout=30)
            for where, expr in dashboard_queries(load_dashboard(), row="Scale-out"):
                assert prom.wait_until(substitute(expr), bool, timeout=10), where
            assert prom.query(unowned) == []

            instances["a"].kill()
            send_rows(kafka_send, topic, rows[200:])
            survivor = f"127.0.0.1:{ports['b']}"
            wait_for(lambda: set(owners(state).values()) == {"b"}, "b takes both over", 60)
            wait_for(lambda: learned(state) == 400, "b learns the rest", 40)
            owned = f'streamlearn_partitions_owned{{instance="{survivor}"}} == 2'
            prom.wait_until(owned, bool, timeout=30)
            rebalances = f'streamlearn_rebalances_total{{instance="{survivor}"}} >= 2'
            prom.wait_until(rebalances, bool, timeout=30)
            prom.wait_until(lag, lambda r: len(r) == 2, timeout=30)
            assert prom.query("sum(streamlearn_partitions_owned)")[0]["value"][1] == "2"
            assert prom.query(unowned) == []
