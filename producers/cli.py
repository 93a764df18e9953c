"""``streamlearn produce``: replay a CSV or JSON Lines file into a Kafka topic."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["produce"]


@click.command("produce")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--bootstrap-servers",
    "-b",
    metavar="HOST:PORT[,...]",
    help="Kafka servers to connect to (else bootstrap.servers from --kafka-config or "
    "STREAMLEARN_KAFKA_BOOTSTRAP_SERVERS).",
)
@click.option("--topic", "-t", required=True, help="Topic to send the records to.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Records per second; 0 sends as fast as Kafka takes them.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    help="Replay this many times faster than real time, along --time-column.",
)
@click.option(
    "--time-column",
    metavar="NAME",
    help="Column with each row's time (numeric seconds or ISO 8601), for --speed.",
)
@click.option("--key-column", metavar="NAME", help="Column whose value becomes the message key.")
@click.option(
    "--id-column",
    metavar="NAME",
    help="Column holding the record id that joins a late label to its features "
    "(default: the row's 'id', else its row number).",
)
@click.option(
    "--target",
    default="y",
    show_default=True,
    metavar="NAME",
    help="The label column (held back by --label-delay).",
)
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    help="Create the topic (and --labels-topic) with this many partitions if missing.",
)
@click.option(
    "--label-delay",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Send each row's features first and its label this many seconds later "
    "(of stream time: divided by --speed).",
)
@click.option(
    "--label-delay-records",
    type=click.IntRange(min=1),
    metavar="N",
    help="Like --label-delay, but the label follows N rows later.",
)
@click.option(
    "--labels-topic",
    metavar="TOPIC",
    help="Send delayed labels to this topic instead of --topic.",
)
@click.option(
    "-X",
    "extra",
    multiple=True,
    metavar="KEY=VALUE",
    help="Kafka client setting, e.g. -X compression.type=gzip (repeatable). Keep passwords "
    "in STREAMLEARN_KAFKA_* variables or --kafka-config instead.",
)
@click.option(
    "--kafka-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="STREAMLEARN_KAFKA_CONFIG",
    help="Java-style .properties file with Kafka client settings (security, tuning).",
)
@click.option(
    "--text-column",
    "text_columns",
    multiple=True,
    metavar="NAME",
    help="Send this CSV column's cells as text exactly as written, not as numbers "
    "(repeatable): a classifier's labels such as 03, 1.50 or 1e3 then arrive unchanged.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Check every row first and send nothing if one cannot be sent (a wrong cell count, "
    "not a JSON object, no time or id where one is needed); by default such rows are skipped "
    "and reported.",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show a progress line (only when stderr is a terminal).",
)
def produce(
    file: Path,
    bootstrap_servers: str | None,
    topic: str,
    rate: float,
    speed: float | None,
    time_column: str | None,
    key_column: str | None,
    id_column: str | None,
    target: str,
    partitions: int | None,
    label_delay: float | None,
    label_delay_records: int | None,
    labels_topic: str | None,
    extra: tuple[str, ...],
    kafka_config: Path | None,
    text_columns: tuple[str, ...],
    strict: bool,
    progress: bool,
) -> None:
    """Replay FILE (CSV with a header, or JSON Lines) into a Kafka topic as JSON records."""
    from streamlearn.producers.replay import ProduceError
    from streamlearn.producers.replay import produce as replay_file
    from streamlearn.sources.kafka_config import load_client_config, parse_servers

    try:
        client_config = load_client_config(extra, kafka_config)
        servers = parse_servers(bootstrap_servers) if bootstrap_servers else None
        servers = servers or client_config.get("bootstrap_servers")
        if not servers:
            raise click.UsageError(
                "no Kafka servers: give --bootstrap-servers HOST:PORT (or set "
                "STREAMLEARN_KAFKA_BOOTSTRAP_SERVERS)"
            )
        result = replay_file(
            file,
            servers,
            topic,
            rate=rate,
            speed=speed,
            time_column=time_column,
            key_column=key_column,
            partitions=partitions,
            label_delay=label_delay,
            label_delay_records=label_delay_records,
            labels_topic=labels_topic,
            id_column=id_column,
            target=target,
            progress=progress,
            client_config=client_config,
            strict=strict,
            text_columns=text_columns,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except ProduceError as exc:
        raise click.ClickException(str(exc)) from None

    for created in result.created_topics:
        click.echo(f"created topic {created} with {partitions} partitions", err=True)
    labels = ""
    if result.labels_topic is not None:
        labels = f" and {result.labels_sent} late labels"
        if result.labels_topic != result.topic:
            labels += f" (to topic {result.labels_topic})"
    click.echo(
        f"sent {result.sent} records{labels} to topic {result.topic} in {result.seconds:.1f} s"
    )
    if result.skipped:
        _report_skipped(result.skipped, result.skipped_reasons)
    if result.interrupted:
        click.echo("interrupted: the rest of the file was not sent", err=True)
        raise SystemExit(130)


def _report_skipped(skipped: int, reasons: tuple[str, ...]) -> None:
    """On stderr: how many rows were not sent, and where and why for the first of them."""
    rows = "row" if skipped == 1 else "rows"
    click.echo(f"skipped {skipped} {rows} that cannot be sent:", err=True)
    for reason in reasons:
        click.echo(f"  {reason}", err=True)
    if skipped > len(reasons):
        click.echo(f"  ... and {skipped - len(reasons)} more", err=True)
