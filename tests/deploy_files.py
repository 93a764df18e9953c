"""Reading deploy/ for tests: the dashboard's queries, the rules, PromQL selectors in them, and
the Dockerfile's stages with the build context its ignore file lets through."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "streamlearn.json"
RULES = DEPLOY / "prometheus" / "rules" / "streamlearn.rules.yml"
#: The dashboard row of a classifier's panels and the rule group of its rules: a regressor
#: exports none of their series, a classifier none of the absolute-error histogram's.
CLASSIFICATION_ROW = "Classification"
CLASSIFICATION_GROUP = "streamlearn_classification"
#: The dashboard row of a keyed run's series (``--key-by``): an unkeyed daemon exports none.
KEYS_ROW = "Per key"
#: The rows and the rule group of several instances (a keyed group's members, a --standby
#: group): a lone daemon exports none of their series (test_*_prometheus.py run groups).
INSTANCES_ROWS = ("Scale-out", "Standby")
INSTANCES_GROUP = "streamlearn_instances"

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
    return [panel for panel, _ in panels_by_row(dashboard)]


def panels_by_row(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], str | None]]:
    """Every panel with the title of the row it is under (a row: its own title)."""
    panels: list[tuple[dict[str, Any], str | None]] = []
    row: str | None = None
    for panel in dashboard.get("panels", []):
        if panel["type"] == "row":
            row = panel["title"]
        panels.append((panel, row))
        panels.extend((nested, row) for nested in panel.get("panels", []))
    return panels


def dashboard_queries(
    dashboard: dict[str, Any], *, row: str | None = None, except_row: str | None = None
) -> list[tuple[str, str]]:
    """``(where, expr)`` for every PromQL query: panel targets, annotations, variables.

    ``row``: only the targets of the panels under that row; ``except_row``: all but those.
    """
    queries: list[tuple[str, str]] = []
    for panel, under in panels_by_row(dashboard):
        if (row is not None and under != row) or (except_row is not None and under == except_row):
            continue
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    if row is not None:
        return queries
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


def load_rules(
    *, group: str | None = None, except_group: str | None = None
) -> list[dict[str, Any]]:
    """The rules of every group, of ``group`` only, or of all groups but ``except_group``."""
    yaml = require_yaml()
    document = yaml.safe_load(RULES.read_text())
    return [
        rule
        for each in document["groups"]
        if (group is None or each["name"] == group) and each["name"] != except_group
        for rule in each["rules"]
    ]


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


# -- the image: Dockerfile stages and the build context its ignore file lets through ---------

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"  # BuildKit reads <Dockerfile>.dockerignore


@dataclass
class Stage:
    """One ``FROM`` stage of a Dockerfile: its base, its name and its instructions in order."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def dockerfile_stages(text: str) -> list[Stage]:
    """The stages of a Dockerfile, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            stages[-1].instructions.append((keyword, args))
    return stages


def _ignore_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex (Go's filepath.Match, plus ``**`` for any depth)."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


@dataclass(frozen=True)
class IgnoreRule:
    """One line of a .dockerignore file: a pattern that excludes, or with ``!`` re-includes."""

    exclude: bool
    text: str
    pattern: re.Pattern[str]

    def matches(self, relative: str) -> bool:
        """Whether the rule matches the path or one of its parent directories (as Docker does)."""
        parts = relative.split("/")
        return any(self.pattern.match("/".join(parts[: n + 1])) for n in range(len(parts)))

    def may_include_under(self, directory: str) -> bool:
        """Whether this ``!`` rule could re-include something below ``directory``."""
        if self.exclude:
            return False
        head = self.text.split("/")[0]
        return any(c in head for c in "*?[") or head == directory.split("/")[0]


def dockerignore_rules(text: str) -> list[IgnoreRule]:
    """The rules of an ignore file, in order (the last one that matches a path wins)."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append(IgnoreRule(not include, pattern, _ignore_pattern(pattern)))
    return rules


def _excluded(relative: str, rules: list[IgnoreRule]) -> bool:
    excluded = False
    for rule in rules:
        if rule.matches(relative):
            excluded = rule.exclude
    return excluded


def context_files(root: Path, rules: list[IgnoreRule]) -> set[str]:
    """The files (relative, POSIX) that ``docker build`` sends from ``root`` under ``rules``."""
    sent = set()
    for directory, subdirs, files in os.walk(root):
        here = Path(directory).relative_to(root).as_posix()
        prefix = "" if here == "." else here + "/"
        # Skip the directories nothing can bring back (.venv, .git, build/): faster, same answer.
        subdirs[:] = [
            d
            for d in subdirs
            if not _excluded(prefix + d, rules)
            or any(rule.may_include_under(prefix + d) for rule in rules)
        ]
        sent.update(prefix + f for f in files if not _excluded(prefix + f, rules))
    return sent
