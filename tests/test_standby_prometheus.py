"""A real Prometheus scrapes the two instances of a real ``run --standby`` group (real broker)
with the shipped rules: the Standby row's queries return the instances' series, exactly one
instance is active before and after the active one is killed, the survivor's takeover is
counted, and the rules about the group's roles fire at no point."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from standby_group import Group, wait_for

from deploy_files import RULES, dashboard_queries, load_dashboard, load_rules, substitute
from prom_server import PrometheusServer, require_binary

pytestmark = [pytest.mark.kafka, pytest.mark.prometheus, pytest.mark.slow]

ROLE_ALERTS = ("StreamlearnNoActiveInstance", "StreamlearnTwoActiveInstances")


def values(prom: PrometheusServer, expr: str) -> dict[str, float]:
    """``instance -> value`` of an instant query (``""`` for a series without the label)."""
    return {s["metric"].get("instance", ""): float(s["value"][1]) for s in prom.query(expr)}


def test_prometheus_sees_one_active_instance_across_a_takeover(
    kafka_bootstrap: str, kafka_topic_factory, tmp_path: Path
) -> None:
    require_binary("prometheus")
    topic = kafka_topic_factory(1)
    state = tmp_path / "state"
    with Group(kafka_bootstrap, topic, state, tmp_path) as group:
        first, second = group.start_pair()
        targets = {f"127.0.0.1:{i.port}": i for i in group.instances}
        role_rules = {r["alert"]: r["expr"] for r in load_rules() if r.get("alert") in ROLE_ALERTS}
        with PrometheusServer(list(targets), rule_files=[RULES]) as prom:
            prom.wait_until('count(streamlearn_role{job="streamlearn"}) == 4', bool, timeout=30)
            for where, expr in dashboard_queries(load_dashboard(), row="Standby"):
                assert prom.wait_until(substitute(expr), bool, timeout=10), where
            active = values(prom, 'streamlearn_role{role="active"}')
            assert active == {f"127.0.0.1:{first.port}": 1.0, f"127.0.0.1:{second.port}": 0.0}
            assert all(prom.query(expr) == [] for expr in role_rules.values())

            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(timeout=10)
            wait_for(lambda: second.role() == "active")
            survivor = f"127.0.0.1:{second.port}"
            prom.wait_until('streamlearn_role{role="active"} == 1', lambda r: len(r) == 1)
            # The dead one's series go stale: the survivor alone is active, its takeover counted.
            prom.wait_until(f'streamlearn_role{{role="active", instance="{survivor}"}} == 1', bool)
            assert values(prom, 'sum(streamlearn_role{role="active"})') == {"": 1.0}
            assert values(prom, "streamlearn_takeovers_total") == {survivor: 1.0}
            assert all(prom.query(expr) == [] for expr in role_rules.values())
            # In the takeover's gap (the session timeout) no instance was active: the alert may
            # have been pending then, but its `for:` keeps a takeover from firing it.
            firing = prom.query(
                'ALERTS{alertname=~"Streamlearn(No|Two)Active.*", alertstate="firing"}'
            )
            assert firing == []
