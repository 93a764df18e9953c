"""Train the batch model A of transfer learning on a CSV file, before going online.

``streamlearn pretrain data.csv`` fits a scikit-learn ``MLPRegressor`` (or ``LinearRegression``)
on a CSV and saves it with skops (a format that loads without running code); ``--warm-start
A.skops`` then starts the online model from it. scikit-learn and pandas are imported only
when a model is trained, so that the command line starts fast.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

__all__ = ["ACTIVATION_NAMES", "PretrainError", "PretrainResult", "pretrain"]

#: Activation name -> scikit-learn's name: scikit-learn's own, plus the Keras spellings.
ACTIVATION_NAMES = {
    "relu": "relu",
    "tanh": "tanh",
    "logistic": "logistic",
    "sigmoid": "logistic",
    "identity": "identity",
    "linear": "identity",
}


class PretrainError(ValueError):
    """The data or the options cannot train a model; the message says what to change."""


@dataclass(frozen=True)
class PretrainResult:
    """What ``pretrain`` produced.

    Attributes
    ----------
    model_path
        The file holding model A (skops; joblib when its name ends in ``.joblib``/``.pkl``).
    csv_path
        The training data.
    kind
        ``"mlp"`` or ``"linear"``.
    features
        The feature columns, in the model's input order (also saved in the model as
        ``feature_names_in_``).
    target
        The target column.
    n_rows
        Number of training rows.
    loss
        Mean squared error of the saved model on its training data.
    epochs_run
        Passes over the data (1 for the closed-form linear fit).
    """

    model_path: Path
    csv_path: Path
    kind: str
    features: tuple[str, ...]
    target: str
    n_rows: int
    loss: float
    epochs_run: int


def pretrain(
    csv_path: str | os.PathLike[str],
    target: str = "y",
    out: str | os.PathLike[str] = "A.skops",
    hidden: Sequence[int] = (50, 50),
    activation: str = "relu",
    epochs: int = 400,
    seed: int = 0,
    kind: str = "mlp",
    features: Sequence[str] | None = None,
) -> PretrainResult:
    """Fit model A on a CSV file and save it with skops (or joblib: ``out`` ends in ``.joblib``).

    The model is fitted on a pandas DataFrame, so it remembers its feature names and transfer
    can check them against the stream. ``kind="mlp"`` is the network of the study note this
    project grew from (docs/design.md, "Terms: the seed"): dense ``hidden`` layers with
    ``activation`` and Adam, trained for exactly ``epochs`` passes as Keras'
    ``fit(epochs=...)`` would (scikit-learn's early stop is switched off). ``kind="linear"`` is
    an ordinary least-squares ``LinearRegression``.

    Parameters
    ----------
    csv_path
        Training data with a header row; every column but ``target`` is a feature unless
        ``features`` is given.
    target
        The column to predict.
    out
        Where to write the model (written to a temporary file, then renamed into place):
        skops, unless the name ends in ``.joblib``, ``.pkl`` or ``.pickle`` (a pickle, which
        ``--warm-start`` loads only with ``--trust-pickle``).
    hidden, activation, epochs, seed
        Shape and training of the MLP (ignored for ``linear``).
    kind
        ``"mlp"`` or ``"linear"``.
    features
        The feature columns, in order.

    Raises
    ------
    PretrainError
        A missing column, a non-numeric or empty column, missing values, bad options.

    Examples
    --------
    >>> import tempfile, skops.io
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "data.csv").write_text("x,y\\n0,1\\n1,3\\n2,5\\n3,7\\n")
    >>> result = pretrain(folder / "data.csv", out=folder / "A.skops", kind="linear")
    >>> result.features, result.n_rows, round(result.loss, 12)
    (('x',), 4, 0.0)
    >>> import pandas as pd
    >>> model = skops.io.load(result.model_path)
    >>> round(float(model.predict(pd.DataFrame({"x": [10.0]}))[0]), 9)
    21.0
    """
    sizes = _checked_options(kind, activation, hidden, epochs)
    csv_path = Path(csv_path)
    X, y, feature_names = _training_data(csv_path, target, features)
    model, epochs_run = _fit(kind, X, y, sizes, activation, epochs, seed)
    loss = float(((model.predict(X) - y) ** 2).mean())
    out = Path(out)
    _save(model, out)
    return PretrainResult(
        model_path=out,
        csv_path=csv_path,
        kind=kind,
        features=tuple(feature_names),
        target=target,
        n_rows=len(y),
        loss=loss,
        epochs_run=epochs_run,
    )


def _checked_options(
    kind: str, activation: str, hidden: Sequence[int], epochs: int
) -> tuple[int, ...]:
    """The hidden layer sizes, once every option is known to be valid."""
    if kind not in ("mlp", "linear"):
        raise PretrainError(f"kind must be 'mlp' or 'linear', got {kind!r}")
    if activation not in ACTIVATION_NAMES:
        raise PretrainError(
            f"unknown activation {activation!r}; use one of {', '.join(sorted(ACTIVATION_NAMES))}"
        )
    sizes = tuple(hidden)
    if not sizes or not all(isinstance(h, int) and h > 0 for h in sizes):
        raise PretrainError(f"hidden must be one or more positive layer sizes, got {sizes!r}")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise PretrainError(f"epochs must be a positive integer, got {epochs!r}")
    return sizes


def _training_data(
    csv_path: Path, target: str, features: Sequence[str] | None
) -> tuple[pd.DataFrame, npt.NDArray[np.float64], list[str]]:
    """The feature frame, the target vector and the feature names of a CSV, checked."""
    import numpy as np
    import pandas as pd

    try:
        frame = pd.read_csv(csv_path)
    except FileNotFoundError:
        raise PretrainError(f"no such file: {csv_path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PretrainError(f"{csv_path} is not a readable CSV file: {exc}") from None
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        raise PretrainError(
            f"{csv_path} has no target column {target!r}; its columns are {', '.join(columns)}"
        )
    feature_names = [c for c in columns if c != target] if features is None else list(features)
    unknown = [c for c in feature_names if c not in columns]
    if unknown:
        raise PretrainError(f"{csv_path} has no column(s) {', '.join(unknown)}")
    if target in feature_names:
        raise PretrainError(f"the target {target!r} cannot also be a feature")
    if not feature_names:
        raise PretrainError(f"{csv_path} has no feature column besides {target!r}")
    for column in [*feature_names, target]:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise PretrainError(f"column {column!r} of {csv_path} is not numeric")
    data = frame[[*feature_names, target]]
    if len(data) < 2:
        raise PretrainError(f"{csv_path} has {len(data)} row(s); at least 2 are needed")
    bad_rows = int((~np.isfinite(data.to_numpy(dtype=np.float64))).any(axis=1).sum())
    if bad_rows:
        raise PretrainError(f"{csv_path} has {bad_rows} row(s) with missing or infinite values")
    X = data[feature_names].astype(np.float64)
    y = data[target].to_numpy(dtype=np.float64)
    return X, y, feature_names


def _fit(
    kind: str,
    X: pd.DataFrame,
    y: npt.NDArray[np.float64],
    hidden: tuple[int, ...],
    activation: str,
    epochs: int,
    seed: int,
) -> tuple[Any, int]:
    """Model A fitted on ``X``, and the passes over the data it took."""
    if kind == "mlp":
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        model = MLPRegressor(
            hidden_layer_sizes=hidden,
            activation=ACTIVATION_NAMES[activation],
            max_iter=epochs,
            random_state=seed,
            # As Keras' fit(epochs=N): run all N passes, do not stop on a plateau.
            n_iter_no_change=epochs,
        )
        with warnings.catch_warnings():
            # Reaching max_iter is the point here, not a problem worth a warning.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        return model, int(model.n_iter_)
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(X, y), 1


def _save(model: Any, out: Path) -> None:
    """Write ``model`` (skops, or joblib for a pickle's name) to a temporary file, then rename
    it into place."""
    from streamlearn.models.loaders import PICKLE_SUFFIXES

    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp.{os.getpid()}")
    try:
        if out.suffix in PICKLE_SUFFIXES:
            import joblib

            joblib.dump(model, temporary)
        else:
            import skops.io

            skops.io.dump(model, temporary)
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
