"""Every option of ``run`` and ``replay``, declared in one place, grouped by what it sets.

The Kafka, pseudo-label and drift groups live in ``kafka_options.py``, ``pseudo_options.py``
and ``drift_options.py``; :func:`stream_options` is where all of them are put together.

Each option has a ``STREAMLEARN_*`` variable (except ``-X``, which holds secrets-free
client settings only on the command line) and can be set from the ``--config`` file.
``--help`` lists them in titled sections (:data:`RUN_SECTIONS`, :data:`REPLAY_SECTIONS`),
the options people set first at the top.
"""

from __future__ import annotations

import click

from streamlearn.cli.class_options import CLASSIFICATION
from streamlearn.cli.drift_options import drift_options
from streamlearn.cli.group import load_config
from streamlearn.cli.help import Section
from streamlearn.cli.kafka_options import KAFKA
from streamlearn.cli.key_options import KEYS
from streamlearn.cli.pseudo_options import pseudo_options
from streamlearn.cli.table import Command, OptionDecorator, apply, choice, flag, option, path
from streamlearn.cli.types import HELD_COUNT, Address, Finite, Rate
from streamlearn.models.champion import DEFAULT_MARGIN, ON_WORSE
from streamlearn.models.registry import CLASSIFIERS, REGRESSORS, TRANSFORMERS

#: The longest a duration option may be, in seconds: a clock wait of 1e300 s overflows.
WEEK = 7 * 24 * 3600.0

# The tables below are declarative: one option per entry, its help text included, so
# they run longer than a function would.

CONFIG: tuple[OptionDecorator, ...] = (
    click.option(
        "--config",
        type=click.Path(dir_okay=False),
        metavar="FILE",
        is_eager=True,
        expose_value=False,
        callback=load_config,
        envvar="STREAMLEARN_CONFIG",
        help="TOML file of settings. Keys are the long option names, with dashes or "
        'underscores (state-dir, from, inspect-json); X = ["KEY=VALUE"] or a [kafka] table '
        "holds -X settings. Top-level keys are shared by run and replay (each ignores the "
        "other's); [run]/[replay] tables override them. Flags and STREAMLEARN_* variables "
        "win over the file.",
    ),
)

#: How a record is read: which column is the target, which are features, the format.
INPUT: tuple[OptionDecorator, ...] = (
    option(
        "--target",
        default="y",
        help="Target column (CSV) or key (JSON). Empty/missing = unlabeled.",
    ),
    option(
        "--features",
        default=None,
        help="Comma-separated feature columns. Default: all but target and id.",
    ),
    option(
        "--id-column",
        default=None,
        help="Column (CSV) or key (JSON, default 'id') holding the record id.",
    ),
    choice(
        "--format",
        "format",
        among=["auto", "csv", "jsonl"],
        help="Record format; auto goes by extension, then by the first byte. Kafka "
        "values are JSON unless --format csv (with --features: features, then target).",
    ),
    choice(
        "--on-schema-change",
        among=["stop", "dead-letter"],
        help="A CSV header row (a rotated-in file, concatenated CSVs) is mapped onto the "
        "model's features by name. One naming other features: stop with an error, or "
        "send it and its rows to the dead letters (reason schema_changed) until a header "
        "of the model's features comes back.",
    ),
)

#: The model learned.
MODEL: tuple[OptionDecorator, ...] = (
    option(
        "--model",
        default="sgd",
        help="Model spec: 'sgd' (the exact textbook update), 'logistic' (the same update as "
        "a classifier) or River classes, e.g. 'StandardScaler | LinearRegression(l2=0.1)', "
        "'ARFRegressor(seed=1)', 'HoeffdingTreeClassifier'. Keyword arguments must be "
        f"literals. Regressors: {', '.join(REGRESSORS)}. Classifiers: {', '.join(CLASSIFIERS)}. "
        f"Steps before the model: {', '.join(TRANSFORMERS)}.",
    ),
    option(
        "--lr",
        default=0.01,
        type=Finite(min=0, min_open=True),
        help="Learning rate alpha of sgd, logistic, softmax, mlp and mlp_classifier unless the "
        "spec sets lr. With "
        "--warm-start, when not given: a tenth of A's own final rate (0.001 if A kept none).",
    ),
    flag(
        "--no-learn",
        help="Score the stream without learning (like vw -t): the metrics are the stream's, "
        "the model stays as it is, and no checkpoint is written (the --state-dir keeps its "
        "model and position), e.g. to evaluate a checkpoint on held-out data.",
    ),
)

#: Where the checkpoints live.
STATE: tuple[OptionDecorator, ...] = (
    path(
        "--state-dir",
        metavar="DIR",
        help="Directory for checkpoints (model + position). Locked while running; "
        "a run with an existing state continues after its position.",
    ),
    flag(
        "--reset",
        help="Discard the state in --state-dir and start a new model (from the start of "
        "the source). --dead-letter and --predictions files are appended to, not emptied.",
    ),
)

#: Where rejected records and predictions go.
SINKS: tuple[OptionDecorator, ...] = (
    option(
        "--dead-letter",
        default=None,
        metavar="FILE|URL",
        help="JSON Lines file (or kafka:// topic) for rejected records, with reasons.",
    ),
    option(
        "--predictions",
        default=None,
        metavar="FILE|URL",
        help="JSON Lines file (or kafka:// topic) for predictions of unlabeled records.",
    ),
    flag(
        "--predictions-all",
        help="--predictions gets every record's prediction (like vw -p): a labeled one's, "
        "made before it was learned, with its label, in stream order.",
    ),
)

#: How often to checkpoint, and the limits of the metrics window, of a line and of the
#: feature names. Each size has a cap (shown in --help): what is held in memory stays bounded.
LIMITS: tuple[OptionDecorator, ...] = (
    option(
        "--checkpoint-every",
        default=100_000,
        type=click.IntRange(min=1, max=10**12),
        help="Checkpoint after this many records (a crash re-learns at most these).",
    ),
    option(
        "--checkpoint-interval",
        default=5.0,
        type=Finite(min=0, min_open=True, max=WEEK),
        help="...and at least this often, in seconds, while records arrive.",
    ),
    option(
        "--rolling-window",
        default=1000,
        type=HELD_COUNT,
        help="Records in the rolling prequential metrics.",
    ),
    option(
        "--max-line-bytes",
        default=1 << 20,
        type=click.IntRange(min=16, max=1 << 30),
        help="Longer lines are rejected to the dead letters.",
    ),
    option(
        "--rotate-wait",
        default=5.0,
        type=Finite(min=0, max=WEEK),
        help="Following a file renamed away (rotated): read the old file until it has "
        "been quiet this many seconds, then switch to the new one.",
    ),
    option(
        "--max-features",
        default=10_000,
        type=HELD_COUNT,
        help="Distinct feature names a JSON stream may bring (without --features); a record "
        "with new names beyond it is a dead letter (too_many_features). Model sizes are "
        "budgeted for this many inputs.",
    ),
)

#: The HTTP face: Prometheus metrics, health, predictions, the model.
HTTP: tuple[OptionDecorator, ...] = (
    option(
        "--metrics-port",
        default=None,
        type=click.IntRange(min=0, max=65535),
        help="Serve /metrics, /healthz, /readyz, POST /predict and GET /model on "
        "this port (0 = any free port; off when not given). Default for "
        "deployments: 9966.",
    ),
    option(
        "--metrics-host",
        default="127.0.0.1",
        type=Address(),
        help="Address the HTTP face binds to (0.0.0.0 to expose it).",
    ),
    flag(
        "--strict-features",
        help="POST /predict refuses (400) a feature the model has not learned, rather "
        "than ignore it and name it in the answer.",
    ),
    flag(
        "--http-learn",
        help="Turn on POST /learn (records learned test-then-train like the stream's; a "
        "POST /predict with an id then waits for its label). Unauthenticated: anyone who "
        "reaches the port can teach the model.",
    ),
    flag(
        "--http-download",
        help="Turn on GET /model/download (the latest checkpoint file). Unauthenticated: "
        "anyone who reaches the port can copy the model.",
    ),
)

#: The divergence guard.
GUARD: tuple[OptionDecorator, ...] = (
    option(
        "--divergence-factor",
        default=100.0,
        type=Finite(min=0),
        help="Restore the last checkpoint when a batch's error exceeds this many "
        "times the rolling MAE before that batch (0 = off). NaN/inf predictions always "
        "restore.",
    ),
)

#: Transfer learning: start model B from a batch model A.
TRANSFER: tuple[OptionDecorator, ...] = (
    path(
        "--warm-start",
        metavar="PATH",
        help="Batch model A to start from: a scikit-learn model saved with skops "
        "(streamlearn pretrain writes A.skops), a Keras .keras file, or a streamlearn "
        "state dir. A joblib/pickle file needs --trust-pickle.",
    ),
    flag(
        "--trust-pickle",
        help="Load a joblib/pickle model A (--warm-start, --teacher warm:FILE), or a state "
        "dir another user owns. Unpickling runs any code the file holds: only for files "
        "you trust.",
    ),
    choice(
        "--transfer-mode",
        default="finetune",
        among=["extract", "finetune", "partial"],
        help="extract: A minus its output layer is a frozen feature extractor; "
        "finetune: retrain all of A's weights; partial: retrain the last "
        "--trainable-layers layers.",
    ),
    option(
        "--trainable-layers",
        default=1,
        type=click.IntRange(min=1),
        help="Layers retrained in partial mode, counted from the output.",
    ),
    option(
        "--feature-map",
        default=None,
        help="Stream feature -> A's feature, e.g. 'temp=x,hum=x2', when names differ.",
    ),
    choice(
        "--on-worse-than-baseline",
        among=ON_WORSE,
        help="With --warm-start, A serves predictions until B's rolling MAE is below A's; "
        "while B's is worse by --baseline-margin: serve-baseline (A serves, B learns on), "
        "reset (also restart B from A after a whole window), alert (B serves; log only).",
    ),
    option(
        "--baseline-margin",
        default=DEFAULT_MARGIN,
        type=Finite(min=0),
        help="How much worse than A (a fraction of A's rolling MAE) B may be and serve.",
    ),
)

#: What the daemon logs on its own (``--log-level`` is every command's, from the group).
LOGGING: tuple[OptionDecorator, ...] = (
    option(
        "--log-every",
        default=60.0,
        type=Finite(min=0),
        metavar="SECONDS",
        help="Log a heartbeat this often: records a second, the rolling error, the Kafka lag "
        "(0 = never). Rejected records are logged at most every 10 s with their top reasons.",
    ),
)

#: Only ``replay``: pacing and what it prints at the end.
REPLAY: tuple[OptionDecorator, ...] = (
    option(
        "--rate",
        default=0.0,
        type=Rate(),
        help="Records per second; 0 = as fast as possible.",
    ),
    click.option(
        "--inspect-json",
        is_flag=True,
        default=False,
        help="Print the final state as JSON (the 'inspect --json' object) on stdout.",
    ),
    click.option(
        "--progress/--no-progress",
        default=True,
        show_default=True,
        help="Progress line on stderr (shown only when stderr is a terminal).",
    ),
)


def stream_options(func: Command) -> Command:
    """Add the options ``run`` and ``replay`` share.

    The pseudo-label and drift groups are declared in ``pseudo_options.py`` and
    ``drift_options.py``, beside the checks that need their typed settings.
    """
    shared = (
        *CONFIG, *INPUT, *MODEL, *CLASSIFICATION, *STATE, *SINKS, *LIMITS, *HTTP, *GUARD,
        *TRANSFER, *KAFKA, *KEYS, *LOGGING,
    )  # fmt: skip
    return pseudo_options(drift_options(apply(shared)(func)))


#: The sections of ``run --help``, in order: the options people set first, then one
#: section per group (``--log-level`` is added to every command by the group).
RUN_SECTIONS: tuple[Section, ...] = (
    ("Main options", ("model", "state_dir", "target", "config")),
    ("Input", apply(INPUT)),
    ("Model", apply((*MODEL, *CLASSIFICATION, *GUARD))),
    ("State, checkpoints and limits", apply((*STATE, *LIMITS))),
    ("Output", apply(SINKS)),
    ("Warm start (transfer learning)", apply(TRANSFER)),
    ("Kafka", apply(KAFKA)),
    ("Keys (one model per key)", apply(KEYS)),
    ("Pseudo-labels and late labels", pseudo_options),
    ("Drift", drift_options),
    ("HTTP: metrics, health, predictions", apply(HTTP)),
    ("Logging", ("log_level", "log_every")),
)
#: ``replay --help``: replay's own options after the output.
REPLAY_SECTIONS: tuple[Section, ...] = (
    *RUN_SECTIONS[:5],
    ("Replay", apply(REPLAY)),
    *RUN_SECTIONS[5:],
)
