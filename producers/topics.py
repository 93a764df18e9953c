"""Kafka plumbing for ``produce``: topics created on demand, a producer connected, and what goes
wrong with either said in words (:class:`ProduceError`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streamlearn.producers.rows import ProduceError

if TYPE_CHECKING:
    from kafka import KafkaProducer

__all__ = ["connect", "create_topics", "ensure_topics"]


def ensure_topics(
    bootstrap_servers: list[str],
    topics: list[str],
    partitions: int,
    client_config: Mapping[str, Any],
) -> list[str]:
    """Create the topics that do not exist yet with ``partitions`` partitions; return those created.

    Existing topics are left alone, whatever their partition count.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from streamlearn.sources.kafka_config import client_kwargs

    admin = KafkaAdminClient(
        **client_kwargs(client_config, "admin"), bootstrap_servers=bootstrap_servers
    )
    try:
        existing = set(admin.list_topics())
        missing = [topic for topic in dict.fromkeys(topics) if topic not in existing]
        created = []
        for topic in missing:
            try:
                # Replication factor 1 works on any cluster; production topics are better made
                # by whoever runs the cluster, with its own replication policy.
                admin.create_topics([NewTopic(topic, partitions, 1)])
                created.append(topic)
            except TopicAlreadyExistsError:
                pass  # someone else was quicker: fine
        return created
    finally:
        admin.close()


def create_topics(
    servers: list[str], topics: list[str], partitions: int | None, config: Mapping[str, Any] | None
) -> list[str]:
    """The topics created with ``partitions`` partitions (none when ``partitions`` is None)."""
    if partitions is None:
        return []
    try:
        return ensure_topics(servers, topics, partitions, client_settings(config))
    except Exception as exc:
        raise ProduceError(
            f"cannot create topic {topics[0]!r}: {type(exc).__name__}: {exc}"
        ) from exc


def connect(servers: list[str], client_config: Mapping[str, Any] | None) -> KafkaProducer:
    """A producer on ``servers`` with the client settings (their servers and group left out)."""
    from kafka import KafkaProducer

    from streamlearn.sources.kafka_config import client_kwargs

    config = client_settings(client_config)
    try:
        return KafkaProducer(
            **{
                "linger_ms": 10,
                "batch_size": 256 * 1024,
                "bootstrap_timeout_ms": 10_000,
                **client_kwargs(config, "producer"),
                "bootstrap_servers": servers,
            }
        )
    except Exception as exc:
        raise ProduceError(
            f"cannot connect to Kafka at {','.join(servers)}: {type(exc).__name__}: {exc}"
        ) from exc


def client_settings(client_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The client settings without servers and group: ``produce`` has its own, and no group."""
    config = dict(client_config or {})
    config.pop("bootstrap_servers", None)
    config.pop("group_id", None)
    return config
