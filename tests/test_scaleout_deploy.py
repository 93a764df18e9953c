"""deploy/k8s/keyed/ without a cluster: a keyed run's StatefulSet scales past one replica on one
shared ReadWriteMany volume, with a PodDisruptionBudget, and each pod names itself and its
address the way the member reads them."""

from __future__ import annotations

from deploy_files import DEPLOY, require_yaml
from streamlearn.scaleout.member import STOP_TIMEOUT_S
from streamlearn.sources.kafka_url import parse_kafka_url

KEYED = DEPLOY / "k8s" / "keyed"


def _documents() -> dict[str, dict]:
    yaml = require_yaml()
    documents: dict[str, dict] = {}
    for path in sorted(KEYED.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            documents[f"{document['kind']}/{document.get('metadata', {}).get('name', '')}"] = (
                document
            )
    return documents


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(_documents()["Kustomization/"]["resources"])
    assert listed == {p.name for p in KEYED.glob("*.yaml")} - {"kustomization.yaml"}


def test_the_statefulset_scales_on_one_shared_volume() -> None:
    documents = _documents()
    spec = documents["StatefulSet/streamlearn-keyed"]["spec"]
    assert spec["replicas"] >= 2 and spec["podManagementPolicy"] == "Parallel"
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > STOP_TIMEOUT_S  # final checkpoints fit
    (container,) = pod["containers"]
    args = container["args"]
    assert args[args.index("--key-by") + 1] == "$(STREAMLEARN_KEY_BY)"
    state_dir = args[args.index("--state-dir") + 1]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["state"] == state_dir
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes["state"]["persistentVolumeClaim"]["claimName"]
    assert "volumeClaimTemplates" not in spec  # one volume for all pods, not one each
    pvc = documents[f"PersistentVolumeClaim/{claim}"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert "tmp" in mounts and mounts["tmp"] == "/tmp"  # the fork server's socket

    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["STREAMLEARN_INSTANCE_ID"]["value"] == "$(POD_NAME)"
    headless = spec["serviceName"]
    assert documents[f"Service/{headless}"]["spec"]["clusterIP"] == "None"
    assert env["STREAMLEARN_ADVERTISED_URL"]["value"] == f"http://$(POD_NAME).{headless}:9966"

    source = documents["ConfigMap/streamlearn-keyed"]["data"]["STREAMLEARN_SOURCE"]
    _, topic, params = parse_kafka_url(source)
    assert topic and params.get("group")  # the group is what spreads the partitions


def test_a_disruption_takes_one_pod_at_a_time() -> None:
    documents = _documents()
    pdb = documents["PodDisruptionBudget/streamlearn-keyed"]["spec"]
    assert pdb["maxUnavailable"] == 1
    labels = documents["StatefulSet/streamlearn-keyed"]["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()


def test_compose_runs_two_instances_on_one_volume() -> None:
    yaml = require_yaml()
    services = yaml.safe_load((DEPLOY / "compose.keyed.yaml").read_text())["services"]
    instances = [services["streamlearn-keyed-1"], services["streamlearn-keyed-2"]]
    commands = [service["command"] for service in instances]
    assert commands[0] == commands[1] and "--key-by" in commands[0]
    _, _, params = parse_kafka_url(commands[0][1])
    assert params.get("group")
    assert instances[0]["volumes"] == instances[1]["volumes"]
    ids = {service["environment"]["STREAMLEARN_INSTANCE_ID"] for service in instances}
    assert len(ids) == 2
    for service in instances:  # each announces the address its host port gives
        port = service["ports"][0].split(":")[1]
        assert service["environment"]["STREAMLEARN_ADVERTISED_URL"] == f"http://127.0.0.1:{port}"
    assert "kafka" not in services  # compose.yaml's broker: used with -f compose.yaml
