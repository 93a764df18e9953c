"""The click options of the pseudo-label side loop and the delayed-label join.

Their values land in the command's params under ``PseudoSettings``' field names; a value
click can judge alone is checked here, the rest by ``build_pseudo``.
"""

from __future__ import annotations

from typing import Any

import click

from streamlearn.cli.table import Command, OptionDecorator, apply, settings_option
from streamlearn.cli.types import FRACTION, HELD_COUNT, Finite
from streamlearn.labels.settings import PseudoSettings
from streamlearn.labels.ttl import DEFAULT_TTL, LabelTtl

__all__ = ["PSEUDO", "pseudo_options"]

#: An option whose default is ``PseudoSettings``' for the field it sets.
_setting = settings_option(PseudoSettings())


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
    _setting(
        "--pseudo-label/--no-pseudo-label",
        help="Learn unlabeled records from a teacher's confident pseudo-labels "
        "(weighted, never scored). Also turns on the delayed-label join.",
    ),
    _setting(
        "--pseudo-queue",
        type=HELD_COUNT,
        help="Unlabeled records waiting for a decision; when full the oldest is rejected "
        "(counted as overflow). Only --threaded fills it: deterministic decides each "
        "window as it fills.",
    ),
    _setting(
        "--pseudo-threshold",
        type=click.FloatRange(0, 1),
        show_default=False,
        help="Least teacher confidence accepted. Regression (default 0.8): confidence = "
        "1 - u/s (u: the teacher's expected error, s: the target's std), so T accepts "
        "u <= (1-T)*s. Classification (default 0.9): the teacher's probability of the class "
        "it gives; a committee's members must all give that class, each with at least T.",
    ),
    _setting(
        "--pseudo-weight",
        type=FRACTION,
        help="Sample weight of an accepted pseudo-label, given to a pipeline's final "
        "estimator; a model that cannot take a weight (KNNRegressor, ARFRegressor) learns "
        "it with this probability instead (said at start).",
    ),
    _setting(
        "--pseudo-window",
        type=HELD_COUNT,
        help="Decide per window of this many unlabeled records, most confident first. "
        "The window alone says when accepted pseudo-labels are learned: as its last "
        "record comes (deterministic), so --rate and batch sizes change nothing.",
    ),
    _setting(
        "--pseudo-max-fraction",
        type=FRACTION,
        help="At most this fraction of each window is accepted. A classifier's window "
        "also keeps each class within its share of the last --pseudo-guard-records true "
        "labels (a class with 20% of them: at most 20% of those accepted, rounded down).",
    ),
    _setting(
        "--pseudo-guard/--no-pseudo-guard",
        help="A twin of the model learns only the true labels; both are scored on each "
        "(inspect: pseudo_labels.effect). When the model does worse than its twin by "
        "--pseudo-guard-margin, pseudo-labeling pauses, the twin serves and learns on, and "
        "pseudo-labels are tried again later. Off: measure only.",
    ),
    _setting(
        "--pseudo-guard-margin",
        type=Finite(min=0),
        help="Regression, relative: the guard pauses when the model's MAE is above "
        "(1 + margin) times its twin's over --pseudo-guard-records true labels. "
        "Classification, in accuracy points: when its accuracy is more than margin below "
        "its twin's (0.05: five points).",
    ),
    _setting(
        "--pseudo-guard-records",
        type=click.IntRange(min=1),
        help="True labels the guard judges on (the effect's rolling window), and the "
        "first pause; later pauses double after a trial that failed within two windows. "
        "A classifier's class shares are those of the last as many true labels.",
    ),
    _setting(
        "--teacher",
        callback=_check_teacher,
        help="Who pseudo-labels: 'committee' (K bagged copies of --model; confidence from "
        "their spread, or for a classifier the least of their probabilities of the class "
        "they all give), 'committee:SPEC', a model spec such as 'KNNRegressor' (confidence "
        "from its recent error near the input; a classifier's: its class probability), or "
        "'warm:PATH' (model A: the default with --warm-start).",
    ),
    _setting(
        "--teacher-k",
        type=click.IntRange(min=2, max=100),
        help="Committee size.",
    ),
    _setting(
        "--deterministic/--threaded",
        show_default=False,
        help="Decide pseudo-labels on the loop thread as each window fills (reproducible "
        "at any speed; default for replay) or on a side thread, learned when ready (the "
        "teacher never slows the loop; default for run).",
    ),
    _setting(
        "--label-ttl",
        show_default=False,
        type=_TtlType(),
        help="Join late labels ({'id','y'} lines, or CSV rows with only id and target) to "
        "features seen this long ago: 600s, 10m, 2h, 1d (wall clock) or 5000r (records). "
        f"Turns the join on; default {DEFAULT_TTL} with --pseudo-label.",
    ),
    _setting(
        "--max-pending-labels",
        type=click.IntRange(min=1, max=10_000_000),
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
