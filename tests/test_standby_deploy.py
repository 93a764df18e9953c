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
