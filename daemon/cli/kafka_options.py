"""The click options of the Kafka source: brokers, topic, group, client settings, start."""

from __future__ import annotations

import click

from streamlearn.cli.table import OptionDecorator, choice, flag, option, path

__all__ = ["KAFKA"]

#: Kafka (SOURCE kafka://HOST:PORT/TOPIC?group=G, or these flags), in ``--help`` order.
KAFKA: tuple[OptionDecorator, ...] = (
    option(
        "-b",
        "--bootstrap-servers",
        default=None,
        help="Kafka brokers HOST:PORT[,HOST:PORT] (overrides the kafka:// URL's).",
    ),
    option(
        "-t",
        "--topic",
        default=None,
        help="Kafka topic (overrides the kafka:// URL's).",
    ),
    option(
        "-G",
        "--group-id",
        default=None,
        help="Consumer group: offsets are committed there after each durable "
        "checkpoint (for lag monitoring); the checkpoint stays the truth.",
    ),
    flag(
        "--standby",
        help="One of several instances of a single model (same ?group=G, shared --state-dir): "
        "the group elects the active learner (group and topic G.active), the others serve "
        "its latest checkpoint and take over when it dies.",
    ),
    click.option(
        "-X",
        "kafka_options",
        multiple=True,
        metavar="KEY=VALUE",
        help="A Kafka client setting (repeatable), e.g. -X fetch.max.bytes=52428800.",
    ),
    path(
        "--kafka-config",
        metavar="FILE",
        help="A .properties file of Kafka client settings (security goes here or "
        "in STREAMLEARN_KAFKA_* variables, never only on the command line).",
    ),
    option(
        "--from",
        "start_from",
        default="earliest",
        metavar="earliest|latest|OFFSET|TIME",
        help="Where to start partitions that neither the checkpoint nor the group knows: "
        "earliest, latest, an offset (negative: that many before the end) or an ISO time "
        "such as 2024-05-01T12:00:00Z (the first record stamped at or after it).",
    ),
    option(
        "--partition",
        default=None,
        type=click.IntRange(min=0),
        help="Read this partition of the topic only (like kcat -p).",
    ),
    option(
        "--count",
        default=None,
        type=click.IntRange(min=1),
        help="Stop after this many Kafka records (learned or rejected), checkpoint and "
        "exit 0 (like kcat -c).",
    ),
    choice(
        "--kafka-client",
        among=["kafka-python", "confluent"],
        help="Kafka client library. confluent (librdkafka; pip install "
        "'streamlearn[confluent]') consumes about 4x faster, with the same semantics "
        "and the same checkpoint format.",
    ),
    choice(
        "--on-data-loss",
        among=["fail", "reset"],
        help="A checkpointed offset below the log start (retention deleted "
        "data): fail loudly, or reset to the log start and record the loss.",
    ),
)
