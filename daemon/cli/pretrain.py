"""``streamlearn pretrain``: train the batch model A of transfer learning on a CSV file.

Imports only click and ``streamlearn.models.pretrain``, which imports scikit-learn and pandas
only when a model is trained, so that listing the commands stays fast.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from streamlearn.cli.table import choice, option
from streamlearn.models.pretrain import ACTIVATION_NAMES, PretrainError, pretrain

__all__ = ["pretrain_command"]

#: The options of this command alone: their variables are ``STREAMLEARN_PRETRAIN_*``.
_option = partial(option, scope="PRETRAIN_")
_choice = partial(choice, scope="PRETRAIN_")


def _parse_hidden(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of layer sizes, e.g. 50,50"
        ) from None
    if not sizes or any(size <= 0 for size in sizes):
        raise click.BadParameter(f"layer sizes must be positive, got {value!r}")
    return sizes


def _parse_features(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> list[str] | None:
    if value is None:
        return None
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise click.BadParameter("give at least one column name, e.g. --features x1,x2")
    return names


@click.command("pretrain")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@option("--target", default="y", help="Column to predict.")
@option(
    "--features",
    default=None,
    callback=_parse_features,
    help="Comma-separated feature columns, in order (default: every column but the target).",
)
@_option(
    "--out",
    default="A.skops",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to save model A: skops (loads without running code), or joblib when the "
    "name ends in .joblib or .pkl (--warm-start then needs --trust-pickle).",
)
@_option(
    "--hidden",
    default="50,50",
    callback=_parse_hidden,
    help="Units of each hidden layer, comma-separated (mlp only).",
)
@_choice(
    "--activation",
    among=sorted(ACTIVATION_NAMES),
    default="relu",
    help="Hidden-layer activation (mlp only).",
)
@_option(
    "--epochs",
    default=400,
    type=click.IntRange(min=1),
    help="Passes over the data, as Keras' fit(epochs=...) (mlp only).",
)
@_option(
    "--seed",
    default=0,
    type=int,
    help="Random seed of the weight initialisation and shuffling (mlp only).",
)
@_choice(
    "--kind",
    among=["mlp", "linear"],
    help="mlp: scikit-learn MLPRegressor; linear: LinearRegression.",
)
def pretrain_command(
    file: Path,
    target: str,
    features: list[str] | None,
    out: Path,
    hidden: tuple[int, ...],
    activation: str,
    epochs: int,
    seed: int,
    kind: str,
) -> None:
    """Train a batch model A on FILE (a CSV with a header) for transfer learning."""
    try:
        result = pretrain(file, target, out, hidden, activation, epochs, seed, kind, features)
    except PretrainError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    shape = f"{kind} {','.join(map(str, hidden))}" if kind == "mlp" else kind
    click.echo(
        f"trained {shape} on {result.n_rows} rows of {file} "
        f"(features {', '.join(result.features)}; target {result.target}; "
        f"{result.epochs_run} epoch(s))"
    )
    click.echo(f"training loss (MSE): {result.loss:.6g}")
    click.echo(f"saved model A to {result.model_path}")
