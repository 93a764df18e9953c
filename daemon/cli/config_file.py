"""The ``--config`` TOML file: its keys are the options' names, read into click's ``default_map``.

A key is an option's long name without its dashes, with dashes or underscores alike:
``state-dir`` or ``state_dir``, ``from``, ``inspect-json``. A flag's other name sets it off
(``threaded = true`` is ``deterministic = false``). ``X`` is a list of ``-X`` client
settings, which a ``[kafka]`` table may also hold (``"fetch.max.bytes" = 52428800``).

Top-level keys are shared by the commands that read the file (``run`` and ``replay``): one
of them ignores a key that only the other has. A table named after a command (``[run]``,
``[replay]``) overrides the top level for that command, and a key its command does not
have there is an error, as is any key no command has; the error lists the keys as the
options are named.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from streamlearn.config import ConfigError

__all__ = ["Key", "config_defaults", "option_keys", "read_toml"]

#: Tables that belong to a command (its settings), never keys of another.
COMMAND_TABLES = frozenset({"run", "replay", "inspect", "produce", "pretrain", "report", "broker"})
#: The table of Kafka client settings (each one a ``-X KEY=VALUE``).
KAFKA_TABLE = "kafka"
#: The parameter ``-X`` fills.
KAFKA_PARAM = "kafka_options"


@dataclass(frozen=True)
class Key:
    """What a config key sets: the parameter ``param``; ``negate``: a flag's off name."""

    param: str
    name: str
    negate: bool = False


def option_keys(command: click.Command) -> dict[str, Key]:
    """Every key ``command`` takes from a config file, in both spellings, to what it sets.

    >>> @click.command()
    ... @click.option("--from", "start_from")
    ... @click.option("--fast/--slow", "fast")
    ... @click.option("-X", "extra", multiple=True)
    ... def demo(start_from, fast, extra): ...
    >>> keys = option_keys(demo)
    >>> keys["from"], keys["slow"].negate, keys["X"].param
    (Key(param='start_from', name='from', negate=False), True, 'extra')
    """
    keys: dict[str, Key] = {}
    for param in command.params:
        if param.name is None or param.name == "config" or not param.expose_value:
            continue
        if not isinstance(param, click.Option):
            keys[param.name] = Key(param.name, param.name)  # the argument, by its name
            continue
        longs = [opt.lstrip("-") for opt in param.opts if opt.startswith("--")]
        names = longs or [opt.lstrip("-") for opt in param.opts]
        for name in names:
            for spelling in (name, name.replace("-", "_")):
                keys[spelling] = Key(param.name, names[0])
        if param.is_flag and param.secondary_opts:
            for opt in param.secondary_opts:
                name = opt.lstrip("-")
                for spelling in (name, name.replace("-", "_")):
                    keys[spelling] = Key(param.name, name, negate=True)
    return keys


def read_toml(path: str | Path) -> dict[str, Any]:
    """The file's tables, or a ``ConfigError`` saying in one line why it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except PermissionError:
        raise ConfigError(f"config file {path} is not readable (permission denied)") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None


def config_defaults(
    path: str | Path, command: click.Command, siblings: Iterable[click.Command] = ()
) -> dict[str, Any]:
    """The settings ``path`` holds for ``command``, as click's ``default_map``.

    ``siblings`` are the other commands reading the same file: their keys at top level
    are left to them.

    >>> import tempfile
    >>> @click.command("replay")
    ... @click.option("--state-dir")
    ... @click.option("--from", "start_from")
    ... @click.option("-X", "kafka_options", multiple=True)
    ... def replay(state_dir, start_from, kafka_options): ...
    >>> path = Path(tempfile.mkdtemp()) / "streamlearn.toml"
    >>> _ = path.write_text('state_dir = "s"\\n[replay]\\nfrom = "latest"\\n'
    ...                     '[kafka]\\n"fetch.max.bytes" = 1000\\n')
    >>> config_defaults(path, replay)
    {'state_dir': 's', 'start_from': 'latest', 'kafka_options': ['fetch.max.bytes=1000']}
    """
    data = read_toml(path)
    name = command.name or ""
    own = option_keys(command)
    others: dict[str, list[str]] = {}
    for sibling in siblings:
        for key in option_keys(sibling).keys() - own.keys():
            others.setdefault(key, []).append(sibling.name or "")
    reader = _Reader(path, name, own, others)
    reader.take(data, shared=True)
    section = data.get(name)
    if isinstance(section, Mapping):
        reader.take(section, shared=False)
    return reader.result()


class _Reader:
    """Reads the top level, then a command's table, into one ``default_map``."""

    def __init__(
        self, path: str | Path, command: str, own: dict[str, Key], others: dict[str, list[str]]
    ) -> None:
        self.path, self.command, self.own, self.others = path, command, own, others
        self.values: dict[str, Any] = {}
        #: ``-X`` settings in file order: a command table's after the top level's.
        self.kafka: list[str] = []
        self.problems: list[str] = []

    def take(self, table: Mapping[str, Any], *, shared: bool) -> None:
        """The keys of one table (the top level when ``shared``)."""
        set_here: dict[str, str] = {}
        for key, value in table.items():
            if shared and key in COMMAND_TABLES and isinstance(value, Mapping):
                continue
            if key == KAFKA_TABLE and isinstance(value, Mapping):
                self.kafka.extend(self._kafka_table(value))
                continue
            found = self.own.get(key)
            if found is None:
                self._not_ours(key, shared)
                continue
            if found.param in set_here:
                raise ConfigError(
                    f"config file {self.path} sets {found.name} twice: as "
                    f"{set_here[found.param]} and as {key}"
                )
            set_here[found.param] = key
            if found.param == KAFKA_PARAM:
                self.kafka.extend(self._kafka_list(key, value))
            else:
                self.values[found.param] = self._value(key, found, value)

    def _not_ours(self, key: str, shared: bool) -> None:
        """A key ``command`` has not: another command's at top level, else a problem."""
        commands = self.others.get(key)
        if commands and shared:
            return  # shared by design: the other command takes it
        if commands:
            self.problems.append(f"{key} (an option of {' and '.join(commands)} only)")
            return
        named = sorted({k.name for k in self.own.values()})
        close = difflib.get_close_matches(key.replace("_", "-"), named, n=1, cutoff=0.6)
        self.problems.append(f"{key} (did you mean {close[0]}?)" if close else key)

    def _value(self, key: str, found: Key, value: Any) -> Any:
        if not found.negate:
            return value
        if not isinstance(value, bool):
            raise ConfigError(f"config file {self.path}: {key} is true or false, not {value!r}")
        return not value

    def _kafka_list(self, key: str, value: Any) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ConfigError(
                f'config file {self.path}: {key} is a list of "KEY=VALUE" Kafka client '
                f"settings (or write a [{KAFKA_TABLE}] table), not {value!r}"
            )
        return list(items)

    def _kafka_table(self, table: Mapping[str, Any]) -> list[str]:
        settings = []
        for key, value in table.items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, str | int | float):
                text = str(value)
            else:
                raise ConfigError(
                    f"config file {self.path}: [{KAFKA_TABLE}] {key} is a string, a number or "
                    f"true/false (a Kafka client setting), not {value!r}"
                )
            settings.append(f"{key}={text}")
        return settings

    def result(self) -> dict[str, Any]:
        """The ``default_map``; the keys that set nothing are refused, listing the command's
        keys as its options are named."""
        if self.problems:
            named = sorted({key.name for key in self.own.values()}, key=str.lower)
            raise ConfigError(
                f"config file {self.path} has unknown settings for '{self.command}': "
                f"{', '.join(self.problems)}. Keys are the options' long names without "
                f"dashes (dashes or underscores alike; [{KAFKA_TABLE}] holds -X settings); "
                f"known: {', '.join(named)}"
            )
        if self.kafka:
            if KAFKA_PARAM not in {key.param for key in self.own.values()}:
                raise ConfigError(
                    f"config file {self.path}: '{self.command}' takes no Kafka client settings"
                )
            self.values[KAFKA_PARAM] = self.kafka
        return self.values
