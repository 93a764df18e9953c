"""deploy/compose.standby.yaml without Docker: two ``--standby`` instances of one single model
on one volume, with a command the real CLI accepts as a group instance."""

from __future__ import annotations

from deploy_files import DEPLOY, require_yaml
from streamlearn.cli.run import run
from streamlearn.config import Settings
from streamlearn.sources.kafka_url import parse_kafka_url
from streamlearn.standby.runner import check_standby


def test_compose_runs_two_standby_instances_on_one_volume() -> None:
    yaml = require_yaml()
    services = yaml.safe_load((DEPLOY / "compose.standby.yaml").read_text())["services"]
    instances = [services["streamlearn-ha-1"], services["streamlearn-ha-2"]]
    command = instances[0]["command"]
    assert instances[1]["command"] == command and "--standby" in command
    assert "--key-by" not in command
    _, _, params = parse_kafka_url(command[1])
    assert params.get("group")
    assert instances[0]["volumes"] == instances[1]["volumes"]
    mount = instances[0]["volumes"][0].split(":")[1]
    assert command[command.index("--state-dir") + 1] == mount
    assert len({service["ports"][0] for service in instances}) == 2
    assert "kafka" not in services  # compose.yaml's broker: used with -f compose.yaml
    context = run.make_context("run", list(command[1:]))
    settings = Settings.from_params(context.params, follow=True)
    check_standby(settings)  # a usage error here would stop the container at once
    assert settings.standby and settings.state_dir is not None


STANDBY = DEPLOY / "k8s" / "standby"


def _documents() -> dict[str, dict]:
    yaml = require_yaml()
    documents: dict[str, dict] = {}
    for path in sorted(STANDBY.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            name = document.get("metadata", {}).get("name", "")
            documents[f"{document['kind']}/{name}"] = document
    return documents


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(_documents()["Kustomization/"]["resources"])
    assert listed == {p.name for p in STANDBY.glob("*.yaml")} - {"kustomization.yaml"}


def test_the_deployment_runs_standbys_on_one_shared_volume() -> None:
    documents = _documents()
    spec = documents["Deployment/streamlearn-ha"]["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0  # a standby is always up
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert "--standby" in args and "--key-by" not in args
    state_dir = args[args.index("--state-dir") + 1]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["state"] == state_dir
    claim = {v["name"]: v for v in pod["volumes"]}["state"]["persistentVolumeClaim"]["claimName"]
    assert documents[f"PersistentVolumeClaim/{claim}"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"  # standbys serve too
    source = documents["ConfigMap/streamlearn-ha"]["data"]["STREAMLEARN_SOURCE"]
    _, topic, params = parse_kafka_url(source)
    assert topic and params.get("group")  # the group elects the active learner
    pdb = documents["PodDisruptionBudget/streamlearn-ha"]["spec"]
    assert pdb["maxUnavailable"] == 1
    labels = spec["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert documents["Service/streamlearn-ha"]["spec"]["selector"].items() <= labels.items()
