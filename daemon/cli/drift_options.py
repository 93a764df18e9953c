"""The click options of the drift monitor.

Their values land in the command's params under ``DriftSettings``' field names; each value
is checked here as it will be by ``DriftConfig``, the combinations by ``build_monitor``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from streamlearn.cli.table import Command, OptionDecorator, apply, choice, option, settings_option
from streamlearn.drift.config import (
    DETECTOR_CHOICES,
    ON_DRIFT,
    SWAP_PATIENCE,
    DriftSettings,
    check_count,
    parse_features,
)

__all__ = ["DRIFT", "drift_options"]

_DEFAULTS = DriftSettings()
#: An option whose default is ``DriftSettings``' for the field it sets.
_setting = settings_option(_DEFAULTS)


def _click_check(
    check: Callable[[Any], Any],
) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback that runs ``check`` and reports its ``ValueError`` as a bad value."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    return callback


#: The drift monitor's options, in ``--help`` order (``DriftSettings`` names their values).
DRIFT: tuple[OptionDecorator, ...] = (
    choice(
        "--drift-detector",
        default=_DEFAULTS.drift_detector,
        among=[*DETECTOR_CHOICES, "none"],
        case_sensitive=False,
        help="Drift detector on the prequential error: a regressor's absolute error, a "
        "classifier's 0/1 error (one-sided: only a rise counts). adwin is the default for "
        "both because, in the measures below, it flags abrupt changes soonest with no false "
        "alarm (regressor) and misses the fewest changes with the fewest false alarms "
        "(classifier). Regressor, measured on River's FriedmanDrift and 2M stationary rows "
        "(bench/README.md): adwin flags abrupt changes in 35-70 records and gradual ones in "
        "300-900, with no false alarm in 2M rows (2 with heavy-tailed noise); page-hinkley "
        "flags abrupt changes later (60-75) and gradual ones sooner (280-600), but "
        "false-alarms every 13,000-24,000 stationary rows; kswin missed most changes and "
        "costs about 1 ms a record. Classifier only: ddm, eddm, hddm-a, hddm-w (River's "
        "binary detectors). Measured on SEA and Agrawal with a concept switch, naive Bayes, "
        "a Hoeffding tree and a logistic regression: adwin missed 2 of 60 switches (median "
        "delay 24-566 records by stream and model), with 24 false alarms in 90 runs of "
        "20,000 rows and 2 in 600,000 stationary rows; ddm missed 6 (47 false alarms), eddm "
        "6 (104), hddm-a 10 (24), hddm-w 16 (91), and page-hinkley none but with 2310 false "
        "alarms.",
    ),
    option(
        "--drift-features",
        default=None,
        callback=_click_check(parse_features),
        help="Comma-separated input features also watched for drift (a shift either way).",
    ),
    _setting(
        "--drift-warmup",
        type=int,
        callback=_click_check(lambda v: check_count(v, "--drift-warmup", 0)),
        help="Records not watched at start-up and after each reset/rollback/swap, while "
        "a fresh model's error falls; as many again while it still falls (up to 20 "
        "times; a doubling of the error meanwhile is flagged), then 100 more set the "
        "detector's unit.",
    ),
    choice(
        "--on-drift",
        default=_DEFAULTS.on_drift,
        among=ON_DRIFT,
        help="On a detection: alert (log and count), reset (a fresh model), rollback (the "
        "--warm-start model; alert without one), background (train a challenger and swap "
        "it in when its recent error is lower).",
    ),
    _setting(
        "--drift-swap-window",
        type=click.IntRange(max=1_000_000),  # the windows are held in memory
        callback=_click_check(lambda v: check_count(v, "--drift-swap-window", 10)),
        help="background: records over which the challenger's MAE must beat the model's "
        f"(dropped after {SWAP_PATIENCE} windows without winning).",
    ),
    _setting(
        "--drift-cooldown",
        type=int,
        callback=_click_check(lambda v: check_count(v, "--drift-cooldown", 0)),
        help="Records after an acted-on detection in which further detections are only "
        "recorded, so one change is acted on once.",
    ),
)


def drift_options(func: Command) -> Command:
    """The drift options of ``run`` and ``replay`` (each with a ``STREAMLEARN_*`` variable).

    Their values arrive in the command's params, ready for ``DriftSettings.from_params``
    and :func:`streamlearn.drift.build.build_monitor`.

    Examples
    --------
    >>> from click.testing import CliRunner
    >>> from streamlearn.drift.build import build_monitor
    >>> @click.command()
    ... @drift_options
    ... def demo(**params):
    ...     click.echo(build_monitor(DriftSettings.from_params(params)).config)
    >>> print(CliRunner().invoke(demo, ["--on-drift", "reset", "--drift-features", "a"]).output)
    DriftConfig(detector='adwin', features=('a',), warmup=500, on_drift='reset', swap_window=300,
    cooldown=1000)
    >>> result = CliRunner().invoke(demo, ["--drift-swap-window", "3"])
    >>> result.exit_code
    2
    >>> print(result.output.splitlines()[-1])
    Error: Invalid value for '--drift-swap-window': --drift-swap-window must be at least 10 records,
    got 3
    """
    return apply(DRIFT)(func)
