"""The click options of the pseudo-label side loop and the delayed-label join.

Their values land in the command's params under ``PseudoSettings``' field names; a value
click can judge alone is checked here, the rest by ``build_pseudo``.
"""

from __future__ import annotations

from typing import Any

import click

from streamlearn.cli.table import Command, OptionDecorator, apply
from streamlearn.cli.types import Finite
from streamlearn.labels.settings import PseudoSettings
from streamlearn.labels.ttl import DEFAULT_TTL, LabelTtl

__all__ = ["PSEUDO", "pseudo_options"]

_DEFAULTS = PseudoSettings()


class _TtlType(click.ParamType):
    """A ``--label-ttl`` value, written back as the text ``LabelTtl`` parses again."""

    name = "TTL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return str(LabelTtl.parse(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _check_teacher(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from streamlearn.models.registry import SpecError, parse_spec

    spec = value.strip()
    if spec == "committee" or spec.startswith("warm:"):
        if spec.startswith("warm:") and not spec[5:].strip():
            raise click.BadParameter("write warm:PATH, the file or state dir of model A")
        return spec
    try:
        parse_spec(spec.split(":", 1)[1] if spec.startswith("committee:") else spec)
    except SpecError as exc:
        raise click.BadParameter(str(exc)) from None
    return spec


#: The side loop's and the join's options, in ``--help`` order (``PseudoSettings`` names
#: their values).
PSEUDO: tuple[OptionDecorator, ...] = (
    click.option(
        "--pseudo-label/--no-pseudo-label",
        default=_DEFAULTS.pseudo_label,
        show_default=True,
        envvar="STREAMLEARN_PSEUDO_LABEL",
        help="Learn unlabeled records from a teacher's confident pseudo-labels "
        "(weighted, never scored). Also turns on the delayed-label join.",
    ),
    click.option(
        "--pseudo-queue",
        default=_DEFAULTS.pseudo_queue,
        show_default=True,
        type=click.IntRange(min=1, max=1_000_000),
        envvar="STREAMLEARN_PSEUDO_QUEUE",
        help="Unlabeled records waiting for a decision; when full the oldest is rejected "
        "(counted as overflow). Only --threaded fills it: deterministic decides each "
        "window as it fills.",
    ),
    click.option(
        "--pseudo-threshold",
        default=_DEFAULTS.pseudo_threshold,
        type=click.FloatRange(0, 1),
        envvar="STREAMLEARN_PSEUDO_THRESHOLD",
        help="Least teacher confidence accepted. Regression (default 0.8): confidence = "
        "1 - u/s (u: the teacher's expected error, s: the target's std), so T accepts "
        "u <= (1-T)*s. Classification (default 0.9): the teacher's probability of the class "
        "it gives; a committee's members must all give that class, each with at least T.",
    ),
    click.option(
        "--pseudo-weight",
        default=_DEFAULTS.pseudo_weight,
        show_default=True,
        type=click.FloatRange(0, 1, min_open=True),
        envvar="STREAMLEARN_PSEUDO_WEIGHT",
        help="Sample weight of an accepted pseudo-label, given to a pipeline's final "
        "estimator; a model that cannot take a weight (KNNRegressor, ARFRegressor) learns "
        "it with this probability instead (said at start).",
    ),
    click.option(
        "--pseudo-window",
        default=_DEFAULTS.pseudo_window,
        show_default=True,
        type=click.IntRange(min=1, max=1_000_000),
        envvar="STREAMLEARN_PSEUDO_WINDOW",
        help="Decide per window of this many unlabeled records, most confident first. "
        "The window alone says when accepted pseudo-labels are learned: as its last "
        "record comes (deterministic), so --rate and batch sizes change nothing.",
    ),
    click.option(
        "--pseudo-max-fraction",
        default=_DEFAULTS.pseudo_max_fraction,
        show_default=True,
        type=click.FloatRange(0, 1, min_open=True),
        envvar="STREAMLEARN_PSEUDO_MAX_FRACTION",
        help="At most this fraction of each window is accepted. A classifier's window "
        "also keeps each class within its share of the last --pseudo-guard-records true "
        "labels (a class with 20% of them: at most 20% of those accepted, rounded down).",
    ),
    click.option(
        "--pseudo-guard/--no-pseudo-guard",
        default=_DEFAULTS.pseudo_guard,
        show_default=True,
        envvar="STREAMLEARN_PSEUDO_GUARD",
        help="A twin of the model learns only the true labels; both are scored on each "
        "(inspect: pseudo_labels.effect). When the model does worse than its twin by "
        "--pseudo-guard-margin, pseudo-labeling pauses, the twin serves and learns on, and "
        "pseudo-labels are tried again later. Off: measure only.",
    ),
    click.option(
        "--pseudo-guard-margin",
        default=_DEFAULTS.pseudo_guard_margin,
        show_default=True,
        type=Finite(min=0),
        envvar="STREAMLEARN_PSEUDO_GUARD_MARGIN",
        help="Regression, relative: the guard pauses when the model's MAE is above "
        "(1 + margin) times its twin's over --pseudo-guard-records true labels. "
        "Classification, in accuracy points: when its accuracy is more than margin below "
        "its twin's (0.05: five points).",
    ),
    click.option(
        "--pseudo-guard-records",
        default=_DEFAULTS.pseudo_guard_records,
        show_default=True,
        type=click.IntRange(min=1),
        envvar="STREAMLEARN_PSEUDO_GUARD_RECORDS",
        help="True labels the guard judges on (the effect's rolling window), and the "
        "first pause; later pauses double after a trial that failed within two windows. "
        "A classifier's class shares are those of the last as many true labels.",
    ),
    click.option(
        "--teacher",
        default=_DEFAULTS.teacher,
        show_default=True,
        callback=_check_teacher,
        envvar="STREAMLEARN_TEACHER",
        help="Who pseudo-labels: 'committee' (K bagged copies of --model; confidence from "
        "their spread, or for a classifier the least of their probabilities of the class "
        "they all give), 'committee:SPEC', a model spec such as 'KNNRegressor' (confidence "
        "from its recent error near the input; a classifier's: its class probability), or "
        "'warm:PATH' (model A: the default with --warm-start).",
    ),
    click.option(
        "--teacher-k",
        default=_DEFAULTS.teacher_k,
        show_default=True,
        type=click.IntRange(min=2, max=100),
        envvar="STREAMLEARN_TEACHER_K",
        help="Committee size.",
    ),
    click.option(
        "--deterministic/--threaded",
        default=_DEFAULTS.deterministic,
        envvar="STREAMLEARN_DETERMINISTIC",
        help="Decide pseudo-labels on the loop thread as each window fills (reproducible "
        "at any speed; default for replay) or on a side thread, learned when ready (the "
        "teacher never slows the loop; default for run).",
    ),
    click.option(
        "--label-ttl",
        default=_DEFAULTS.label_ttl,
        type=_TtlType(),
        envvar="STREAMLEARN_LABEL_TTL",
        help="Join late labels ({'id','y'} lines, or CSV rows with only id and target) to "
        "features seen this long ago: 600s, 10m, 2h, 1d (wall clock) or 5000r (records). "
        f"Turns the join on; default {DEFAULT_TTL} with --pseudo-label.",
    ),
    click.option(
        "--max-pending-labels",
        default=_DEFAULTS.max_pending_labels,
        show_default=True,
        type=click.IntRange(min=1, max=10_000_000),
        envvar="STREAMLEARN_MAX_PENDING_LABELS",
        help="Most features kept waiting for a label; past it the oldest are evicted (counted).",
    ),
)


def pseudo_options(func: Command) -> Command:
    """Click options of the side loop and the delayed-label join (each with a STREAMLEARN_* var).

    Examples
    --------
    >>> from click.testing import CliRunner
    >>> @click.command()
    ... @pseudo_options
    ... def show(**params):
    ...     click.echo(f"{params['pseudo_label']} {params['teacher']} {params['label_ttl']}")
    >>> CliRunner().invoke(show, ["--pseudo-label", "--label-ttl", "10m"]).output
    'True committee 600s\\n'
    >>> print(CliRunner().invoke(show, ["--label-ttl", "10"]).output.splitlines()[-1])
    Error: Invalid value for '--label-ttl': label TTL '10' needs a unit: seconds (600s, 10m, 2h,
    1d) or records (5000r)
    """
    return apply(PSEUDO)(func)
