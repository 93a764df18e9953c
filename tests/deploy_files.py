"""Reading deploy/ for tests: the dashboard's queries, the rules, and PromQL selectors in them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "streamlearn.json"
RULES = DEPLOY / "prometheus" / "rules" / "streamlearn.rules.yml"

#: What Grafana would put in place of each dashboard variable, for running a query
#: against a bare Prometheus: the one job, every instance, a 1-minute rate window.
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "job": "streamlearn",
    "instance": ".+",
}

# A series selector of ours (a streamlearn_* metric, a recording rule of ours, or up{...})
# with its optional label matchers.
_SELECTOR = re.compile(
    r"(?<![\w:])"
    r"((?:[a-z]+:)?streamlearn_[A-Za-z0-9_:]*|up(?=\s*\{))"
    r"\s*(\{[^{}]*\})?"
)


def require_yaml() -> ModuleType:
    """PyYAML; skip the test without it, except under CI=true (it is a test dependency)."""
    try:
        import yaml
    except ImportError:
        message = "PyYAML is not installed (add pyyaml to the test extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return yaml


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    panels: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """``(where, expr)`` for every PromQL query: panel targets, annotations, variables."""
    queries: list[tuple[str, str]] = []
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            queries.append((f"annotation {annotation['name']!r}", annotation["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = (
            variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        )
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match, f"variable {variable['name']}: expected label_values(expr, label)"
        queries.append((f"variable {variable['name']!r}", match.group(1)))
    return queries


def load_rules() -> list[dict[str, Any]]:
    yaml = require_yaml()
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def substitute(expr: str, variables: dict[str, str] | None = None) -> str:
    """``expr`` with ``$var`` and ``${var}`` replaced as Grafana would."""
    values = GRAFANA_VARIABLES if variables is None else variables

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no test value for dashboard variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)


def selectors(expr: str) -> list[str]:
    """The series selectors of ours in ``expr``, without range or offset."""
    return [name + (matchers or "") for name, matchers in _SELECTOR.findall(expr)]


def metric_names(expr: str) -> set[str]:
    """The metric names of ours (``streamlearn_*``, recording rules) used in ``expr``."""
    return {name for name, _ in _SELECTOR.findall(expr) if name != "up"}
