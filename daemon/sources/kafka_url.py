"""Where Kafka is: ``kafka://`` URLs, bootstrap server lists and topic names, parsed and checked."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "DEFAULT_PORT",
    "ENV_PREFIX",
    "check_topic",
    "is_kafka_url",
    "parse_kafka_url",
    "parse_servers",
]

#: Prefix of the environment variables that hold client settings (named in error messages).
ENV_PREFIX = "STREAMLEARN_KAFKA_"
DEFAULT_PORT = 9092
_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def parse_servers(text: str | Iterable[str]) -> list[str]:
    """``"a:9092, b"`` (or a list) as ``['a:9092', 'b:9092']``; port 9092 when none is given.

    >>> parse_servers("broker-1:9093,broker-2, [::1]:9094")
    ['broker-1:9093', 'broker-2:9092', '[::1]:9094']
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    servers: list[str] = []
    for item in items:
        server = item.strip()
        if not server:
            continue
        if server.startswith("["):  # [IPv6]:port
            host, _, rest = server[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
            host_part = f"[{host}]"
        else:
            host, _, port_text = server.rpartition(":") if ":" in server else (server, "", "")
            host_part = host
        if not host or "/" in host_part or "@" in host_part:
            raise ValueError(f"bad Kafka server {server!r}: expected HOST:PORT")
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"bad Kafka server {server!r}: the port must be 1-65535")
            port = int(port_text)
        else:
            port = DEFAULT_PORT
        servers.append(f"{host_part}:{port}")
    if not servers:
        raise ValueError("no Kafka bootstrap servers given")
    return servers


def is_kafka_url(text: str) -> bool:
    """Whether ``text`` is a ``kafka://`` URL (rather than a file path).

    >>> is_kafka_url("kafka://localhost:9092/predictions"), is_kafka_url("out/predictions.jsonl")
    (True, False)
    """
    return text.lower().startswith("kafka://")


def parse_kafka_url(url: str) -> tuple[list[str], str | None, dict[str, str]]:
    """Split ``kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?group=G]`` into servers, topic, parameters.

    The host part may be empty (``kafka:///topic``: servers come from elsewhere) and the topic may
    be missing (``kafka://host:9092``: the topic comes from ``--topic``). User names and passwords
    are refused: put them in the environment or a config file, not in a URL.

    >>> parse_kafka_url("kafka://b1:9092,b2:9093/clicks?group=model-a")
    (['b1:9092', 'b2:9093'], 'clicks', {'group': 'model-a'})
    >>> parse_kafka_url("kafka:///clicks")
    ([], 'clicks', {})
    >>> parse_kafka_url("kafka://me:pw@b1:9092/clicks")
    Traceback (most recent call last):
    ...
    ValueError: kafka://...@b1:9092/clicks: credentials do not belong in a URL; ...
    """
    if not is_kafka_url(url):
        raise ValueError(f"{url!r} is not a kafka:// URL (kafka://HOST:PORT/TOPIC)")
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        hosts = netloc.rpartition("@")[2]
        raise ValueError(
            f"kafka://...@{hosts}{parts.path}: credentials do not belong in a URL; set "
            f"{ENV_PREFIX}SASL_PLAIN_USERNAME and {ENV_PREFIX}SASL_PLAIN_PASSWORD "
            f"or use --kafka-config FILE"
        )
    servers = parse_servers(netloc) if netloc.strip(", ") else []
    path = parts.path.strip("/")
    if "/" in path:
        raise ValueError(f"{url}: expected a single topic after the servers, got {path!r}")
    topic = path or None
    if topic is not None:
        check_topic(topic)
    if parts.fragment:
        raise ValueError(f"{url}: unexpected '#{parts.fragment}'")
    try:
        params = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        raise ValueError(f"{url}: cannot read the parameters {parts.query!r}") from None
    return servers, topic, params


def check_topic(topic: str) -> None:
    """A ``ValueError`` unless ``topic`` is a name Kafka accepts for a topic."""
    if topic in (".", "..") or not _TOPIC_RE.match(topic):
        raise ValueError(
            f"{topic!r} is not a valid Kafka topic name "
            "(1-249 characters from letters, digits, '.', '_' and '-')"
        )
