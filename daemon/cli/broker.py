"""``streamlearn broker``: a throwaway in-memory Kafka-protocol broker on loopback."""

from __future__ import annotations

import time

import click

from streamlearn.broker import BrokerError, LocalBroker

__all__ = ["broker_command"]


@click.command("broker")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=9092,
    show_default=True,
    help="TCP port on 127.0.0.1 to listen on; 0 picks a free port.",
)
def broker_command(port: int) -> None:
    """Run a throwaway in-memory Kafka-protocol broker (tansu) on 127.0.0.1 until Ctrl+C.

    Prints the bootstrap address on stdout. Everything it stores is gone when it stops.
    """
    broker = LocalBroker(port=port or None)
    try:
        broker.start()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    try:  # from here on, Ctrl+C (even this early) means a clean stop
        click.echo(broker.bootstrap)
        click.echo(
            f"tansu broker (in memory) on {broker.bootstrap}; try: streamlearn produce FILE "
            f"-b {broker.bootstrap} -t TOPIC. Ctrl+C stops it.",
            err=True,
        )
        while broker.running:
            time.sleep(0.5)
        raise click.ClickException(f"the broker exited:\n{broker.log_tail()}")
    except KeyboardInterrupt:
        click.echo("stopping the broker", err=True)
    finally:
        broker.stop()
