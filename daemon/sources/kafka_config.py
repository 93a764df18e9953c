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
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# The URL and properties-file parsers are part of the settings API: callers import them here.
from streamlearn.sources.kafka_properties import read_properties
from streamlearn.sources.kafka_start import StartAt
from streamlearn.sources.kafka_url import (
    ENV_PREFIX,
    check_topic,
    is_kafka_url,
    parse_kafka_url,
    parse_servers,
)

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

#: ``STREAMLEARN_KAFKA_CONFIG`` names the properties file (the CLI's ``--kafka-config`` envvar);
#: it is not a client setting.
_ENV_NOT_CLIENT_KEYS = frozenset({"config"})

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
    "auto_offset_reset": "use --from earliest|latest|OFFSET|TIME (where to start without a "
    "checkpoint)",
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

    What is read: ``start_from`` (``earliest``, ``latest``, an offset or an ISO time, see
    :class:`~streamlearn.sources.kafka_start.StartAt`) for partitions no checkpoint or group
    knows, only ``partition`` when given, and at most ``count`` records when given.

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
    start_from: str = "earliest"
    on_data_loss: OnDataLoss = "fail"
    #: Read this partition only (``--partition``, like ``kcat -p``).
    partition: int | None = None
    #: Stop after this many records (``--count``, like ``kcat -c``).
    count: int | None = None
    #: Stop at the log end seen at start (``replay``, like ``kcat -e``), rather than follow.
    until_end: bool = False

    def __post_init__(self) -> None:
        if not self.bootstrap_servers:
            raise ValueError("no Kafka bootstrap servers given")
        check_topic(self.topic)
        StartAt.parse(self.start_from)  # a ValueError names --from
        if self.partition is not None and self.partition < 0:
            raise ValueError(f"--partition must be 0 or more, got {self.partition}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"--count must be 1 or more, got {self.count}")
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
        until_end: bool = False,
        partition: int | None = None,
        count: int | None = None,
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
        if on_data_loss not in ("fail", "reset"):
            raise ValueError(f"--on-data-loss must be fail or reset, got {on_data_loss!r}")
        return cls(
            bootstrap_servers=list(servers),
            topic=chosen_topic,
            group_id=group,
            client_config=client_config,
            start_from=start_from,
            on_data_loss=on_data_loss,  # type: ignore[arg-type]  # checked just above
            until_end=until_end,
            partition=partition,
            count=count,
        )

    @property
    def start_at(self) -> StartAt:
        """``start_from`` parsed."""
        return StartAt.parse(self.start_from)

    def __repr__(self) -> str:
        return (
            f"KafkaSettings(bootstrap_servers={self.bootstrap_servers!r}, topic={self.topic!r}, "
            f"group_id={self.group_id!r}, client_config={redact(self.client_config)!r}, "
            f"start_from={self.start_from!r}, on_data_loss={self.on_data_loss!r}, "
            f"partition={self.partition!r}, count={self.count!r}, until_end={self.until_end!r})"
        )
