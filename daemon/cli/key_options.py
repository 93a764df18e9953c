"""The options of a keyed run (one model per key): ``--key-by`` and what goes with it.

Listed under "Keys" in ``--help`` (``streamlearn.cli.options``); what they mean is
:mod:`streamlearn.keys`'s (the store) and :mod:`streamlearn.loop.keyrouter`'s (the routing).
"""

from __future__ import annotations

import click

from streamlearn.cli.table import OptionDecorator, choice, option
from streamlearn.keys.store import DEFAULT_MAX_LIVE

__all__ = ["FALLBACKS", "KEYS", "MAX_LIVE_KEYS", "MAX_TOP_KEYS"]

#: What predicts an unlabeled record of a key with no model yet (``--key-fallback``).
FALLBACKS = ("none", "warm", "global")
#: ``--max-live-keys`` at most: each live key holds a model in memory.
MAX_LIVE_KEYS = 10_000_000
#: ``--metrics-top-keys`` at most (``streamlearn.observe.keys.MAX_TOP_KEYS``: each a series).
MAX_TOP_KEYS = 1000

# A declarative table: one option per entry, its help text included.

#: One model per key.
KEYS: tuple[OptionDecorator, ...] = (
    option(
        "--key-by",
        default=None,
        metavar="FIELD",
        help="Learn one model per key: the CSV column or JSON key FIELD names the model a "
        "record belongs to (never a feature); ':key' takes the Kafka message key. Every key's "
        "model is the --model spec. A record without a key is a dead letter (missing_key).",
    ),
    option(
        "--default-key",
        default=None,
        metavar="NAME",
        help="The key of a record whose key is missing or empty (instead of a dead letter).",
    ),
    option(
        "--max-live-keys",
        default=DEFAULT_MAX_LIVE,
        type=click.IntRange(min=1, max=MAX_LIVE_KEYS),
        help="Per-key models in memory at most; the least recently used are written to the "
        "state store (a temporary directory without --state-dir) and read back when their "
        "key returns, the same bits.",
    ),
    choice(
        "--key-fallback",
        among=FALLBACKS,
        help="What predicts an unlabeled record of a key with no model yet: none (no "
        "prediction, counted and logged), warm (model A of --warm-start), global (one more "
        "model, learned on every record of every key).",
    ),
    option(
        "--metrics-top-keys",
        default=10,
        type=click.IntRange(min=0, max=MAX_TOP_KEYS),
        help="The worst keys by rolling MAE (or accuracy) exported to Prometheus as labelled "
        "series; every other key series is a total, whatever the number of keys.",
    ),
)
