"""Kafka connection settings from a ``kafka://`` URL, flags, ``-X key=value``, a file and the env.

Security settings (TLS files, SASL user and password) can come from a Java-style ``.properties``
file or from ``STREAMLEARN_KAFKA_<KEY>`` environment variables, so they never have to appear on a
command line (where ``ps`` shows them). Precedence, weakest first: properties file < environment <
``-X`` flags < explicit flags and the URL. Keys may be written the Java/librdkafka way
(``security.protocol``) or the kafka-python way (``security_protocol``); values arrive as text and
are converted to the type kafka-python expects. Mistakes raise ``ValueError`` with a plain message.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "ENV_PREFIX",
    "KafkaSettings",
    "client_kwargs",
    "is_kafka_url",
    "load_client_config",
    "normalize_key",
    "parse_kafka_url",
    "parse_servers",
    "read_properties",
    "redact",
]

log = logging.getLogger(__name__)

ENV_PREFIX = "STREAMLEARN_KAFKA_"
#: ``STREAMLEARN_KAFKA_CONFIG`` names the properties file (the CLI's ``--kafka-config`` envvar);
#: it is not a client setting.
_ENV_NOT_CLIENT_KEYS = frozenset({"config"})
DEFAULT_PORT = 9092

StartFrom = Literal["earliest", "latest"]
OnDataLoss = Literal["fail", "reset"]

# librdkafka / Java names whose kafka-python name is not simply the dotted name with underscores.
_ALIASES = {
    "ssl_ca_location": "ssl_cafile",
    "ssl_certificate_location": "ssl_certfile",
    "ssl_key_location": "ssl_keyfile",
    "ssl_key_password": "ssl_password",
    "ssl_crl_location": "ssl_crlfile",
    "ssl_cipher_suites": "ssl_ciphers",
    "sasl_mechanisms": "sasl_mechanism",
    "sasl_username": "sasl_plain_username",
    "sasl_password": "sasl_plain_password",
}
_UNSUPPORTED = {
    "sasl_jaas_config": "kafka-python has no JAAS: set sasl.mechanism, sasl.username and "
    "sasl.password (or STREAMLEARN_KAFKA_SASL_PLAIN_USERNAME / _PASSWORD) instead",
    "ssl_truststore_location": "kafka-python reads PEM files: export the truststore to PEM and "
    "set ssl.ca.location (ssl_cafile)",
    "ssl_keystore_location": "kafka-python reads PEM files: export the keystore to PEM and set "
    "ssl.certificate.location and ssl.key.location (ssl_certfile, ssl_keyfile)",
}
# streamlearn positions the consumer itself: it seeks to checkpointed offsets and commits
# explicitly after a durable checkpoint, so these would fight it.
_MANAGED = {
    "enable_auto_commit": "streamlearn commits offsets itself, after each durable checkpoint",
    "auto_offset_reset": "use --from earliest|latest (where to start without a checkpoint)",
    "auto_commit_interval_ms": "streamlearn commits offsets itself, after each durable checkpoint",
}
# Settings that take Python objects, not text.
_OBJECT_VALUED = frozenset(
    {
        "key_deserializer",
        "value_deserializer",
        "key_serializer",
        "value_serializer",
        "partitioner",
        "partition_assignment_strategy",
        "kafka_client",
        "selector",
        "metric_reporters",
        "socket_options",
        "ssl_context",
        "sasl_oauth_token_provider",
        "sasl_kerberos_name",
        "default_offset_commit_callback",
    }
)
# Settings whose kafka-python default is None but whose value is not text.
_INT_WHEN_DEFAULT_NONE = frozenset({"receive_buffer_bytes", "send_buffer_bytes"})
_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _known_defaults() -> dict[str, Any]:
    """Every kafka-python client setting with its default (consumer, producer and admin)."""
    # Imported here, not at module top: parsing a URL must not pay for the Kafka client.
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    defaults: dict[str, Any] = {}
    for client in (KafkaAdminClient, KafkaProducer, KafkaConsumer):
        defaults.update(client.DEFAULT_CONFIG)
    return defaults


def normalize_key(key: str) -> str:
    """The kafka-python name of a setting written the Java, librdkafka or Python way.

    >>> normalize_key("security.protocol")
    'security_protocol'
    >>> normalize_key("ssl.ca.location")
    'ssl_cafile'
    >>> normalize_key("SASL_PLAIN_PASSWORD")
    'sasl_plain_password'
    """
    name = key.strip().lower().replace(".", "_").replace("-", "_")
    return _ALIASES.get(name, name)


def _is_secret(key: str) -> bool:
    return any(word in key for word in ("password", "secret", "token"))


def redact(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` that is safe to log: passwords and tokens are masked.

    >>> redact({"sasl_plain_username": "ml", "sasl_plain_password": "s3cret"})
    {'sasl_plain_username': 'ml', 'sasl_plain_password': '***'}
    """
    return {key: "***" if _is_secret(key) and value else value for key, value in config.items()}


def _coerce(key: str, text: str, defaults: Mapping[str, Any], origin: str) -> Any:
    """Convert one textual value to the type kafka-python expects for ``key``."""
    value = text.strip()
    default = defaults.get(key)
    where = f"{origin}: {key}={value!r}"
    if isinstance(default, bool):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(f"{where}: expected true or false")
    if key == "acks":
        if value.lower() == "all":
            return "all"
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{where}: expected 0, 1, -1 or all") from None
    if key == "api_version":
        try:
            return tuple(int(part) for part in value.split("."))
        except ValueError:
            raise ValueError(f"{where}: expected a version such as 3.7.0") from None
    if key == "bootstrap_servers":
        return parse_servers(value)
    if isinstance(default, int) or key in _INT_WHEN_DEFAULT_NONE:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{where}: expected a whole number") from None
    if isinstance(default, float):  # retries and consumer_timeout_ms default to infinity
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                raise ValueError(f"{where}: expected a number") from None
    if key == "security_protocol":
        if value.upper() not in _SECURITY_PROTOCOLS:
            raise ValueError(f"{where}: expected one of {', '.join(_SECURITY_PROTOCOLS)}")
        return value.upper()
    if key == "sasl_mechanism":
        return value.upper()
    # Everything else (file paths, user names, passwords) stays text, even when it looks like a
    # number: a password of 123456 must not become an int.
    return value


def _validated_key(raw_key: str, defaults: Mapping[str, Any], origin: str) -> str:
    key = normalize_key(raw_key)
    if not key:
        raise ValueError(f"{origin}: empty setting name")
    if key in _UNSUPPORTED:
        raise ValueError(f"{origin}: {raw_key} is not supported: {_UNSUPPORTED[key]}")
    if key in _MANAGED:
        raise ValueError(f"{origin}: {raw_key} cannot be set: {_MANAGED[key]}")
    if key in _OBJECT_VALUED:
        raise ValueError(f"{origin}: {raw_key} takes a Python object and cannot be set as text")
    if key not in defaults:
        raise ValueError(
            f"{origin}: unknown Kafka client setting {raw_key!r} (kafka-python name {key!r})"
        )
    return key


def read_properties(path: str | os.PathLike[str]) -> dict[str, str]:
    r"""Read a Java-style ``.properties`` file: ``key=value``, ``key: value`` or ``key value``.

    ``#`` and ``!`` start comments, a trailing backslash continues a line, and ``\t``, ``\n``,
    ``\\``, ``\=``, ``\:`` and ``\uXXXX`` escapes are understood.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "client.properties"
    >>> _ = path.write_text("# cluster\nsecurity.protocol=SASL_SSL\nsasl.mechanism : PLAIN\n")
    >>> read_properties(path)
    {'security.protocol': 'SASL_SSL', 'sasl.mechanism': 'PLAIN'}
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"Kafka config file {file} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"Kafka config file {file} is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read Kafka config file {file}: {exc}") from None

    properties: dict[str, str] = {}
    logical = ""
    for raw_line in text.splitlines():
        line = raw_line.lstrip()
        if not logical and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:  # an odd number of backslashes continues the line
            logical += line[:-1]
            continue
        logical += line
        key, value = _split_property(logical)
        properties[key] = value
        logical = ""
    if logical:
        key, value = _split_property(logical)
        properties[key] = value
    return properties


def _split_property(line: str) -> tuple[str, str]:
    key_chars: list[str] = []
    i = 0
    while i < len(line):
        char = line[i]
        if char == "\\" and i + 1 < len(line):
            key_chars.append(line[i : i + 2])
            i += 2
            continue
        if char in "=:" or char.isspace():
            break
        key_chars.append(char)
        i += 1
    rest = line[i:].lstrip()
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip()
    return _unescape("".join(key_chars)), _unescape(rest.rstrip())


def _unescape(text: str) -> str:
    escapes = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(escapes.get(nxt, nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _warn_if_readable_by_others(path: Path, keys: Iterable[str]) -> None:
    if not any(_is_secret(key) for key in keys):
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "Kafka config file %s holds a password and is readable by other users; "
            "consider chmod 600",
            path,
        )


def load_client_config(
    extra: Iterable[str] = (),
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The kafka-python client settings from a properties file, the environment and ``-X`` flags.

    Later sources win: file < ``STREAMLEARN_KAFKA_*`` environment < ``-X key=value``. Keys come
    back in kafka-python's spelling with typed values; ``bootstrap_servers`` and ``group_id`` may
    be among them (``KafkaSettings.build`` lifts them out).

    >>> load_client_config(["request.timeout.ms=20000", "ssl.check.hostname=false"], environ={})
    {'request_timeout_ms': 20000, 'ssl_check_hostname': False}
    >>> load_client_config(environ={"STREAMLEARN_KAFKA_SASL_PLAIN_PASSWORD": "123456"})
    {'sasl_plain_password': '123456'}
    """
    environ = os.environ if environ is None else environ
    defaults = _known_defaults()
    config: dict[str, Any] = {}

    if config_file is not None:
        path = Path(config_file)
        properties = read_properties(path)
        for raw_key, value in properties.items():
            key = _validated_key(raw_key, defaults, f"{path}")
            config[key] = _coerce(key, value, defaults, f"{path}")
        _warn_if_readable_by_others(path, config)

    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or not value.strip():
            continue  # an empty variable (a blank template slot) counts as unset
        suffix = name[len(ENV_PREFIX) :].lower()
        if suffix in _ENV_NOT_CLIENT_KEYS:
            continue
        key = _validated_key(suffix, defaults, name)
        config[key] = _coerce(key, value, defaults, name)

    for item in extra:
        raw_key, sep, value = item.partition("=")
        if not sep or not raw_key.strip():
            raise ValueError(f"-X {item!r}: expected key=value, e.g. -X security.protocol=SSL")
        key = _validated_key(raw_key, defaults, f"-X {raw_key.strip()}")
        if _is_secret(key):
            log.warning(
                "-X %s puts a secret on the command line, where other users can see it; "
                "prefer %s%s or --kafka-config",
                raw_key.strip(),
                ENV_PREFIX,
                key.upper(),
            )
        config[key] = _coerce(key, value, defaults, f"-X {raw_key.strip()}")
    return config


def client_kwargs(
    config: Mapping[str, Any], client: Literal["consumer", "producer", "admin"]
) -> dict:
    """The subset of ``config`` that the given kafka-python client accepts.

    One ``client_config`` serves the source's consumer, the sinks' producer and the admin client,
    but each kafka-python client rejects settings it does not know (``max_poll_records`` means
    nothing to a producer).

    >>> client_kwargs({"max_poll_records": 5000, "linger_ms": 5, "client_id": "sl"}, "producer")
    {'linger_ms': 5, 'client_id': 'sl'}
    """
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    known = {
        "consumer": KafkaConsumer.DEFAULT_CONFIG,
        "producer": KafkaProducer.DEFAULT_CONFIG,
        "admin": KafkaAdminClient.DEFAULT_CONFIG,
    }[client]
    return {key: value for key, value in config.items() if key in known}


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
        _check_topic(topic)
    if parts.fragment:
        raise ValueError(f"{url}: unexpected '#{parts.fragment}'")
    try:
        params = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        raise ValueError(f"{url}: cannot read the parameters {parts.query!r}") from None
    return servers, topic, params


def _check_topic(topic: str) -> None:
    if topic in (".", "..") or not _TOPIC_RE.match(topic):
        raise ValueError(
            f"{topic!r} is not a valid Kafka topic name "
            "(1-249 characters from letters, digits, '.', '_' and '-')"
        )


def _one_of(what: str, *candidates: tuple[str, Any]) -> Any:
    """The one value given explicitly; two different explicit values are a user mistake."""
    given = [(origin, value) for origin, value in candidates if value not in (None, "", [])]
    if not given:
        return None
    first_origin, first = given[0]
    for origin, value in given[1:]:
        if value != first:
            raise ValueError(
                f"{what} is given twice: {first!r} ({first_origin}) and {value!r} ({origin})"
            )
    return first


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where to read from, as whom, and how: everything the Kafka source and sinks need.

    ``client_config`` holds kafka-python keyword arguments (security, timeouts, tuning), without
    ``bootstrap_servers`` and ``group_id``, which have fields of their own. ``repr()`` masks
    passwords, so settings can be logged.

    Examples
    --------
    >>> settings = KafkaSettings.build("kafka://127.0.0.1:9092/clicks?group=model-a", environ={})
    >>> settings.bootstrap_servers, settings.topic, settings.group_id, settings.start_from
    (['127.0.0.1:9092'], 'clicks', 'model-a', 'earliest')

    Security settings from the environment, tuning from ``-X``:

    >>> env = {"STREAMLEARN_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    ...        "STREAMLEARN_KAFKA_SASL_MECHANISM": "PLAIN",
    ...        "STREAMLEARN_KAFKA_SASL_PLAIN_USERNAME": "streamlearn",
    ...        "STREAMLEARN_KAFKA_SASL_PLAIN_PASSWORD": "s3cret"}
    >>> settings = KafkaSettings.build(bootstrap_servers="b1:9093", topic="clicks",
    ...                                extra=["max.poll.records=2000"], environ=env)
    >>> settings.client_config["security_protocol"], settings.client_config["max_poll_records"]
    ('SASL_SSL', 2000)
    >>> "s3cret" in repr(settings)
    False
    """

    bootstrap_servers: list[str]
    topic: str
    group_id: str | None = None
    client_config: dict[str, Any] = field(default_factory=dict)
    start_from: StartFrom = "earliest"
    on_data_loss: OnDataLoss = "fail"

    def __post_init__(self) -> None:
        if not self.bootstrap_servers:
            raise ValueError("no Kafka bootstrap servers given")
        _check_topic(self.topic)
        if self.start_from not in ("earliest", "latest"):
            raise ValueError(f"start_from must be 'earliest' or 'latest', got {self.start_from!r}")
        if self.on_data_loss not in ("fail", "reset"):
            raise ValueError(f"on_data_loss must be 'fail' or 'reset', got {self.on_data_loss!r}")
        if self.group_id is not None and not self.group_id.strip():
            raise ValueError("the consumer group id must not be empty")

    @classmethod
    def build(
        cls,
        source_url: str | None = None,
        bootstrap_servers: str | Iterable[str] | None = None,
        topic: str | None = None,
        group_id: str | None = None,
        extra: Iterable[str] = (),
        config_file: str | os.PathLike[str] | None = None,
        start_from: str = "earliest",
        on_data_loss: str = "fail",
        environ: Mapping[str, str] = os.environ,
    ) -> KafkaSettings:
        """Combine a ``kafka://`` URL, flags, ``-X`` settings, a properties file and the env.

        The URL and the explicit flags (``--bootstrap-servers``, ``--topic``, ``--group-id``) must
        agree when both are given; either overrides ``bootstrap.servers`` / ``group.id`` from
        ``-X``, the environment or the file.
        """
        client_config = load_client_config(extra, config_file, environ)
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_crlfile"):
            # Caught here, a wrong path is a usage error; caught by the client, it is an
            # endless "cannot connect" loop.
            if key in client_config and not Path(client_config[key]).is_file():
                raise ValueError(f"{key} {client_config[key]} is not a readable file")
        configured_servers = client_config.pop("bootstrap_servers", None)
        configured_group = client_config.pop("group_id", None)

        url_servers: list[str] = []
        url_topic: str | None = None
        url_group: str | None = None
        if source_url is not None:
            url_servers, url_topic, params = parse_kafka_url(source_url)
            url_group = params.pop("group", None)
            if params:
                raise ValueError(
                    f"{source_url}: unknown parameter(s) {', '.join(sorted(params))}; "
                    "only ?group=GROUP_ID is understood (put client settings in -X or a file)"
                )
        flag_servers = parse_servers(bootstrap_servers) if bootstrap_servers else []

        servers = _one_of(
            "the bootstrap servers", ("URL", url_servers), ("--bootstrap-servers", flag_servers)
        )
        if servers is None:
            servers = configured_servers
        if not servers:
            raise ValueError(
                "no Kafka bootstrap servers: give kafka://HOST:PORT/TOPIC, --bootstrap-servers, "
                f"or bootstrap.servers in --kafka-config / {ENV_PREFIX}BOOTSTRAP_SERVERS"
            )
        chosen_topic = _one_of("the topic", ("URL", url_topic), ("--topic", topic))
        if chosen_topic is None:
            raise ValueError("no Kafka topic: give kafka://HOST:PORT/TOPIC or --topic")
        group = _one_of("the consumer group", ("URL ?group=", url_group), ("--group-id", group_id))
        if group is None:
            group = configured_group or None
        if start_from not in ("earliest", "latest"):
            raise ValueError(f"--from must be earliest or latest, got {start_from!r}")
        if on_data_loss not in ("fail", "reset"):
            raise ValueError(f"--on-data-loss must be fail or reset, got {on_data_loss!r}")
        return cls(
            bootstrap_servers=list(servers),
            topic=chosen_topic,
            group_id=group,
            client_config=client_config,
            start_from=start_from,  # type: ignore[arg-type]  # checked just above
            on_data_loss=on_data_loss,  # type: ignore[arg-type]
        )

    def __repr__(self) -> str:
        return (
            f"KafkaSettings(bootstrap_servers={self.bootstrap_servers!r}, topic={self.topic!r}, "
            f"group_id={self.group_id!r}, client_config={redact(self.client_config)!r}, "
            f"start_from={self.start_from!r}, on_data_loss={self.on_data_loss!r})"
        )
