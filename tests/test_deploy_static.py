"""deploy/ without running a daemon: the dashboard, the Prometheus config and rules (with
promtool for real), the systemd unit, and the Kubernetes and Compose manifests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from deploy_files import (
    CLASSIFICATION_GROUP,
    CLASSIFICATION_ROW,
    DEPLOY,
    KEYS_ROW,
    RULES,
    all_panels,
    dashboard_queries,
    load_dashboard,
    load_rules,
    metric_names,
    require_yaml,
)
from prom_server import require_binary
from streamlearn.classify.metrics import BINARY_METRICS, MULTICLASS_METRICS
from streamlearn.keys import KeyedModels, LearnerCodec
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor
from streamlearn.observe.class_counts import class_tallies
from streamlearn.observe.http import DEFAULT_METRICS_PORT
from streamlearn.observe.keys import KeyTelemetry
from streamlearn.observe.telemetry import Telemetry
from streamlearn.scaleout.member import MemberStats, Restore
from streamlearn.scaleout.telemetry import member_registry
from streamlearn.standby.role import Role

PROMETHEUS = DEPLOY / "prometheus"


def exposed_names(telemetry: Telemetry | None = None) -> set[str]:
    """Every sample name a real Telemetry exposes (with lag, baseline and ready bound): a
    regressor's, and a keyed regressor's, a classifier's and the series of several instances
    (a group member's, a standby's role) too when ``telemetry`` is None."""
    if telemetry is None:
        return (
            exposed_names(Telemetry(CollectorRegistry(), source="kafka"))
            | exposed_names(keyed_telemetry())
            | exposed_names(class_telemetry())
            | instance_names()
        )
    telemetry.baseline_metrics = lambda: {}
    telemetry.lag = lambda: {("t", 0): 0}
    telemetry.ready = lambda: True
    text = generate_latest(telemetry.registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] not in "#"}


def registry_names(registry: CollectorRegistry) -> set[str]:
    text = generate_latest(registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] not in "#"}


def instance_names() -> set[str]:
    """The sample names of a keyed group member (``MemberStats``, a partition's lag and its
    take-over bound) and of a ``--standby`` instance's role."""
    stats = MemberStats(topic="t", lag={0: 3}, restores={0: Restore(0.0, 4096, 0.1)})
    registry = CollectorRegistry()
    Role().register(registry)
    return registry_names(member_registry(stats)) | registry_names(registry)  # type: ignore[arg-type]


def class_telemetry(binary: bool = True) -> Telemetry:
    """A classifier's telemetry, as ``observe.face`` builds it."""
    return Telemetry(
        CollectorRegistry(),
        source="kafka",
        model_metric_names=BINARY_METRICS if binary else MULTICLASS_METRICS,
        class_counts=lambda: class_tallies(["no", "yes"], [[3, 1], [2, 4]]),
        error_buckets=None,
    )


def keyed_telemetry() -> Telemetry:
    """A keyed regressor's telemetry (``--key-by``): its store's series on its registry."""
    telemetry = Telemetry(CollectorRegistry(), source="kafka")
    models = KeyedModels(LearnerCodec(lambda: Learner(SGDRegressor())), max_live=1)
    models.events = KeyTelemetry(telemetry.registry, held=models)
    for key in "ab":
        models.get(key).step({"x": 1.0}, 2.0)
    models.close()
    return telemetry


def recorded_names() -> set[str]:
    return {rule["record"] for rule in load_rules() if "record" in rule}


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


# -- Grafana --------------------------------------------------------------------------------


def test_dashboard_has_a_stable_uid_and_a_datasource_variable() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "streamlearn-overview"  # links and provisioning rely on it
    assert dashboard["id"] is None
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_dashboard_uids_are_unique_across_dashboards() -> None:
    uids = [load_dashboard()["uid"]]
    for path in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        if path.name != "streamlearn.json":
            import json

            uids.append(json.loads(path.read_text())["uid"])
    assert len(uids) == len(set(uids))


def test_every_panel_target_and_annotation_uses_the_datasource_variable() -> None:
    dashboard = load_dashboard()
    templated = {"type": "prometheus", "uid": "${datasource}"}
    panels = [p for p in all_panels(dashboard) if p["type"] != "row"]
    assert len(panels) >= 12
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["datasource"] == templated, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == templated, (panel["title"], target["refId"])
    for annotation in dashboard["annotations"]["list"]:
        if annotation.get("builtIn"):
            continue
        assert annotation["datasource"] == templated, annotation["name"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == templated, variable["name"]


def test_dashboard_covers_what_operators_ask_for() -> None:
    dashboard = load_dashboard()
    exprs = " ".join(expr for _, expr in dashboard_queries(dashboard))
    for needle in (
        "streamlearn_records_received_total",
        "streamlearn_records_learned_total",
        "streamlearn_records_rejected_total",
        "streamlearn_model_metric",
        "streamlearn_prediction_abs_error_sum",
        "streamlearn_pseudo_labels_total",
        "streamlearn_kafka_consumer_lag_records",
        "streamlearn_checkpoint_last_success_timestamp_seconds",
        "streamlearn_learn_latency_seconds_bucket",
    ):
        assert needle in exprs, needle
    drift = [a for a in dashboard["annotations"]["list"] if a.get("name") == "Drift"]
    assert drift and "streamlearn_drift_detections_total" in drift[0]["expr"]


def test_every_metric_in_dashboard_and_rules_exists() -> None:
    known = exposed_names() | recorded_names()
    used: dict[str, set[str]] = {}
    for where, expr in dashboard_queries(load_dashboard()):
        for name in metric_names(expr):
            used.setdefault(name, set()).add(where)
    for rule in load_rules():
        where = f"rule {rule.get('record') or rule.get('alert')}"
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(where)
    assert len(used) > 15
    unknown = {name: sorted(places) for name, places in used.items() if name not in known}
    assert unknown == {}


def test_classification_row_and_rules_read_only_a_classifiers_series() -> None:
    # A classifier fills them and a regressor none of them: the live tests query each task's.
    regressor = exposed_names(Telemetry(CollectorRegistry(), source="kafka"))
    classifier = exposed_names(class_telemetry()) | recorded_names()
    class_metrics = set(BINARY_METRICS) | set(MULTICLASS_METRICS)
    row = dashboard_queries(load_dashboard(), row=CLASSIFICATION_ROW)
    rules = load_rules(group=CLASSIFICATION_GROUP)
    assert len(row) >= 6 and len(rules) >= 3
    named = [(rule.get("alert") or rule["record"], rule["expr"]) for rule in rules]
    for where, expr in [*row, *named]:
        names = metric_names(expr)
        assert names <= classifier, (where, names - classifier)
        # The model's gauge is shared: its metric label must pick a classifier's metrics.
        picked = re.findall(r'metric=~?"([^"]+)"', expr)
        assert names - regressor or (
            picked and set("|".join(picked).split("|")) <= class_metrics
        ), (where, "a regressor exports this too")
    exprs = " ".join(expr for _, expr in row)
    for needle in (
        'metric="accuracy"',
        "log_loss|cross_entropy",
        "streamlearn_class_labels_total",
        "streamlearn_class_predictions_total",
        "streamlearn_class_correct_total",
    ):
        assert needle in exprs, needle
    assert "StreamlearnAccuracyDropping" in {rule.get("alert") for rule in rules}
    assert "streamlearn_prediction_abs_error_count" not in exposed_names(class_telemetry())


def test_the_per_key_row_reads_only_a_keyed_runs_series() -> None:
    # An unkeyed daemon exports none of them: test_prometheus_live.py queries a keyed one's.
    unkeyed = exposed_names(Telemetry(CollectorRegistry(), source="kafka"))
    keyed = exposed_names(keyed_telemetry())
    row = dashboard_queries(load_dashboard(), row=KEYS_ROW)
    assert len(row) >= 8
    for where, expr in row:
        names = metric_names(expr)
        assert names and names <= keyed - unkeyed, (where, names)
    used = set().union(*(metric_names(expr) for _, expr in row))
    for needle in (
        "streamlearn_keys_live",
        "streamlearn_keys_held",
        "streamlearn_key_spills_total",
        "streamlearn_key_loads_total",
        "streamlearn_key_spill_seconds_bucket",
        "streamlearn_key_load_seconds_bucket",
        "streamlearn_keys_rolling_metric_bucket",
        "streamlearn_key_worst_rolling_metric",
    ):
        assert needle in used, needle


def test_scaleout_and_standby_rows_read_only_the_series_of_several_instances() -> None:
    # A lone daemon exports none of them: test_prometheus_live.py queries a member's and a
    # standby group's.
    alone = exposed_names(Telemetry(CollectorRegistry(), source="kafka"))
    several = instance_names()
    used: set[str] = set()
    for row, least in (("Scale-out", 6), ("Standby", 2)):
        queries = dashboard_queries(load_dashboard(), row=row)
        assert len(queries) >= least, row
        for where, expr in queries:
            names = metric_names(expr)
            assert names and names <= several - alone, (where, names)
            used |= names
    assert used == several  # every series of several instances is on the dashboard


def test_rate_windows_use_the_rate_interval_variable() -> None:
    # Fixed short windows break when the scrape interval grows; annotations are the
    # exception (Grafana does not interpolate $__rate_interval there reliably).
    for where, expr in dashboard_queries(load_dashboard()):
        if where.startswith("panel"):
            for window in re.findall(r"\[([^\]]+)\]", expr):
                assert window == "$__rate_interval", (where, expr)


def test_grafana_provisioning_points_at_the_dashboard_folder() -> None:
    yaml = require_yaml()
    datasources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"].startswith("http")
    providers = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/streamlearn.yml").read_text()
    )
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts


# -- Prometheus -----------------------------------------------------------------------------


def test_promtool_check_config() -> None:
    promtool = require_binary("promtool")
    for config in ("prometheus.yml", "prometheus.compose.yml"):
        result = run(promtool, "check", "config", config, cwd=PROMETHEUS)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "1 rule files found" in result.stdout


def test_prometheus_scrapes_the_default_port() -> None:
    text = (PROMETHEUS / "prometheus.yml").read_text()
    assert f'"127.0.0.1:{DEFAULT_METRICS_PORT}"' in text
    assert "job_name: streamlearn" in text


def test_promtool_check_rules() -> None:
    promtool = require_binary("promtool")
    result = run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules() -> None:
    promtool = require_binary("promtool")
    tests = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert len(tests) >= 2
    result = run(promtool, "test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_silent() -> None:
    yaml = require_yaml()
    alerts = {rule["alert"] for rule in load_rules() if "alert" in rule}
    assert {
        "StreamlearnStalled",
        "StreamlearnErrorRising",
        "StreamlearnDriftDetected",
        "StreamlearnCheckpointTooOld",
        "StreamlearnDivergence",
        "StreamlearnDown",
    } <= alerts
    fired: set[str] = set()
    silent: set[str] = set()
    for path in (PROMETHEUS / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    assert alerts - fired == set(), "alerts never shown firing"
    assert alerts - silent == set(), "alerts never shown silent"


def test_every_alert_is_in_the_readmes_table() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for rule in load_rules():
        if "alert" in rule:
            assert f"| `{rule['alert']}` |" in readme, rule["alert"]


def test_every_alert_has_severity_summary_and_description() -> None:
    for rule in load_rules():
        if "alert" in rule:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


# -- systemd --------------------------------------------------------------------------------

UNIT = DEPLOY / "systemd" / "streamlearn.service"


def unit_keys() -> dict[str, list[str]]:
    """``Section.Key -> values`` of the unit, continuation lines joined."""
    keys: dict[str, list[str]] = {}
    section = ""
    text = UNIT.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        keys.setdefault(f"{section}.{key}", []).append(value)
    return keys


def test_systemd_unit_is_hardened_and_runs_the_daemon() -> None:
    keys = unit_keys()
    for key, expected in {
        "Service.DynamicUser": "yes",
        "Service.StateDirectory": "streamlearn",
        "Service.ProtectSystem": "strict",
        "Service.NoNewPrivileges": "yes",
        "Service.PrivateTmp": "yes",
        "Service.ProtectHome": "yes",
        "Service.KillSignal": "SIGTERM",
        "Service.EnvironmentFile": "-/etc/streamlearn/streamlearn.env",
        "Install.WantedBy": "multi-user.target",
    }.items():
        assert keys.get(key) == [expected], key
    assert keys["Service.RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert keys["Service.CapabilityBoundingSet"] == [""]
    assert int(keys["Service.TimeoutStopSec"][0]) >= 30
    (exec_start,) = keys["Service.ExecStart"]
    assert re.search(r"streamlearn run \$\{STREAMLEARN_SOURCE\}", exec_start)
    assert "--state-dir /var/lib/streamlearn" in exec_start
    assert "--metrics-port ${STREAMLEARN_METRICS_PORT}" in exec_start
    assert f"STREAMLEARN_METRICS_PORT={DEFAULT_METRICS_PORT}" in keys["Service.Environment"]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (the structural test above still ran)")
    # The venv in ExecStart does not exist here: verify everything else.
    unit = tmp_path / "streamlearn.service"
    unit.write_text(UNIT.read_text().replace("/opt/streamlearn/bin/streamlearn", "/bin/true"))
    result = run(analyze, "verify", unit)
    assert result.returncode == 0, result.stderr
    findings = [line for line in result.stderr.splitlines() if "streamlearn.service" in line]
    assert findings == []


# -- Kubernetes and Compose -----------------------------------------------------------------


def k8s_documents() -> dict[str, dict]:
    yaml = require_yaml()
    documents: dict[str, dict] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            documents[f"{document['kind']}/{document.get('metadata', {}).get('name', '')}"] = (
                document
            )
    return documents


def test_kustomization_lists_every_manifest() -> None:
    documents = k8s_documents()
    listed = set(documents["Kustomization/"]["resources"])
    present = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_statefulset_one_owner_with_state_on_a_volume() -> None:
    documents = k8s_documents()
    statefulset = documents["StatefulSet/streamlearn"]
    spec = statefulset["spec"]
    assert spec["replicas"] == 1
    assert f"Service/{spec['serviceName']}" in documents
    (claim,) = spec["volumeClaimTemplates"]
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    (container,) = pod["containers"]
    args = container["args"]
    assert args[0] == "run"
    state_dir = args[args.index("--state-dir") + 1]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == state_dir == "/var/lib/streamlearn"
    port = int(args[args.index("--metrics-port") + 1])
    assert port == DEFAULT_METRICS_PORT
    assert container["ports"][0]["containerPort"] == port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "preStop" in container["lifecycle"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    # Every $(VAR) in args is defined for the container.
    defined = {e["name"] for e in container["env"]}
    for arg in args:
        for name in re.findall(r"\$\((\w+)\)", arg):
            assert name in defined, name
            ref = next(e for e in container["env"] if e["name"] == name)
            config_map = documents[f"ConfigMap/{ref['valueFrom']['configMapKeyRef']['name']}"]
            assert ref["valueFrom"]["configMapKeyRef"]["key"] in config_map["data"]


def test_the_pods_are_scraped_once() -> None:
    # Annotating both the pod template and the Service makes the usual kubernetes-pods and
    # kubernetes-service-endpoints jobs scrape each pod twice. The pods are annotated: a
    # StatefulSet's pod is the instance, and it is scraped also while not ready.
    documents = k8s_documents()
    pod = documents["StatefulSet/streamlearn"]["spec"]["template"]["metadata"]
    annotated = [
        name
        for name, document in documents.items()
        if document.get("metadata", {}).get("annotations", {}).get("prometheus.io/scrape")
    ]
    assert annotated == []
    assert pod["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["annotations"]["prometheus.io/port"] == str(DEFAULT_METRICS_PORT)


#: Ports the Prometheus wiki's "Default port allocations" page lists (as stored here: the
#: core components, every exporter from 9100 to 9745, then the few above 9900).
ALLOCATED_PORTS = {
    *range(9090, 9095),
    *range(9100, 9746),
    *(9901, 9911, 9913, 9943, 9980, 9983, 9984, 9987, 9990, 9999),
    *(3903, 7300, 8080, 8082, 8088, 8089, 8292, 8404, 9042, 9087, 9095, 9097, 9099),
}


def test_the_default_port_is_no_other_exporters() -> None:
    assert DEFAULT_METRICS_PORT not in ALLOCATED_PORTS
    readme = (DEPLOY / "README.md").read_text()
    assert f"**{DEFAULT_METRICS_PORT}**" in readme and "Default port allocations" in readme
    for path in [*DEPLOY.rglob("*"), DEPLOY.parent / "README.md"]:
        if path.is_file() and path.suffix in ("", ".md", ".yml", ".yaml", ".service", ".example"):
            lines = path.read_text().splitlines()
            # Only where it says why the default is not graphite_exporter's 9108.
            assert all("9108" not in line or "graphite_exporter" in line for line in lines), path


def test_metrics_service_selects_the_pods() -> None:
    documents = k8s_documents()
    labels = documents["StatefulSet/streamlearn"]["spec"]["template"]["metadata"]["labels"]
    service = documents["Service/streamlearn"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["port"] == DEFAULT_METRICS_PORT


def test_compose_runs_kafka_daemon_prometheus_grafana() -> None:
    yaml = require_yaml()
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"kafka", "streamlearn", "prometheus", "grafana"} <= services.keys()
    daemon = services["streamlearn"]
    command = daemon["command"]
    assert command[0] == "run" and command[1].startswith("kafka://kafka:9092/")
    assert command[command.index("--state-dir") + 1] == "/var/lib/streamlearn"
    assert command[command.index("--metrics-host") + 1] == "0.0.0.0"
    assert (DEPLOY / daemon["build"]["dockerfile"].removeprefix("deploy/")).exists()
    for volume in services["prometheus"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), source
    compose_config = (PROMETHEUS / "prometheus.compose.yml").read_text()
    assert f"streamlearn:{DEFAULT_METRICS_PORT}" in compose_config


def test_compose_kafka_keeps_its_log_on_the_volume() -> None:
    # Without KAFKA_LOG_DIRS the apache/kafka image writes to /tmp/kraft-combined-logs: topic data
    # lost on recreate while the daemon's checkpoint keeps the old offsets.
    yaml = require_yaml()
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    kafka = compose["services"]["kafka"]
    named = set(compose.get("volumes") or {})
    on_volumes = [
        Path(mount.split(":")[1]) for mount in kafka["volumes"] if mount.split(":")[0] in named
    ]
    log_dirs = kafka["environment"].get("KAFKA_LOG_DIRS")
    assert log_dirs, "KAFKA_LOG_DIRS is unset: Kafka logs go to /tmp in the container"
    for log_dir in str(log_dirs).split(","):
        assert any(Path(log_dir).is_relative_to(m) for m in on_volumes), (log_dir, on_volumes)
