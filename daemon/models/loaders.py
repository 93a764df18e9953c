"""Read model A from a file or an object: scikit-learn, River, a streamlearn checkpoint, Keras.

A regressor here; a classifier through :mod:`streamlearn.models.class_loaders`.

Unpickling runs whatever code the pickle names, so A loads from formats that cannot:
scikit-learn models through skops (its allow-list of types), Keras ``.keras`` files (zip,
JSON and HDF5), and streamlearn state dirs, whose checkpoints are signed. A joblib or
pickle file is loaded only with ``trust_pickle`` (``--trust-pickle``).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from river import base

from streamlearn.classify.space import ClassSpace
from streamlearn.models import class_loaders
from streamlearn.models.batch import BatchModel, FloatArray, TransferError
from streamlearn.models.keras import load_keras
from streamlearn.models.mlp import MLPRegressor
from streamlearn.models.registry import final_estimator

__all__ = ["PICKLE_SUFFIXES", "as_batch_model", "load_batch_model", "skops_trusted"]

#: Suffixes of files that are pickles (joblib's included): loaded only with ``trust_pickle``.
PICKLE_SUFFIXES = frozenset({".joblib", ".pkl", ".pickle"})

# scikit-learn regressors whose predict() is exactly ``X @ coef_ + intercept_``. The GLMs
# (Poisson, Gamma, Tweedie) are left out on purpose: their predict applies a link function.
_SKLEARN_LINEAR = frozenset(
    {
        "LinearRegression",
        "Ridge",
        "RidgeCV",
        "SGDRegressor",
        "Lasso",
        "LassoCV",
        "ElasticNet",
        "ElasticNetCV",
        "HuberRegressor",
        "BayesianRidge",
        "ARDRegression",
        "Lars",
        "LassoLars",
        "QuantileRegressor",
        "TheilSenRegressor",
    }
)


def load_batch_model(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> BatchModel:
    """Read model A from a file or a state directory.

    Accepted: a scikit-learn ``MLPRegressor`` or linear regressor (``LinearRegression``,
    ``Ridge``, ``SGDRegressor``, ...) or classifier (``MLPClassifier``, ``LogisticRegression``,
    ``SGDClassifier(loss="log_loss")``), alone or in a ``Pipeline`` after one
    ``StandardScaler``, saved with skops (``streamlearn pretrain`` writes ``.skops``); a
    streamlearn state directory or ``.ckpt`` generation file (signed: its HMAC is checked
    before unpickling); a Keras ``Sequential`` model of ``Dense`` layers saved as ``.keras``
    (read with zip, json and h5py: Keras itself is not needed). With ``trust_pickle`` also a
    joblib or pickle file (of those models, a River regressor, classifier or pipeline, or a
    dict with a ``"model"``), a ``.ckpt`` or state dir that another user owns.

    Raises
    ------
    TransferError
        The file is missing, unreadable, a pickle without ``trust_pickle``, or holds a model
        (or a type, in a skops file) this module does not load.

    Examples
    --------
    >>> import tempfile, skops.io, pandas as pd
    >>> from sklearn.linear_model import LinearRegression
    >>> frame = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [1.0, 3.0, 5.0]})
    >>> path = Path(tempfile.mkdtemp()) / "A.skops"
    >>> skops.io.dump(LinearRegression().fit(frame[["x"]], frame["y"]), path)
    >>> a = load_batch_model(path)
    >>> a.kind, a.feature_names
    ('linear', ('x',))
    >>> round(a.predict_one({"x": 3.0}), 9)
    7.0
    """
    path = Path(path)
    if not path.exists():
        raise TransferError(f"model A not found: {path}")
    if path.is_dir() or path.suffix == ".ckpt":
        model, classes = _load_checkpoint(path, trust_pickle)
        return as_batch_model(model, f"checkpoint {path}", classes)
    if path.suffix == ".h5":
        raise TransferError(
            f"{path} looks like a legacy Keras HDF5 file; load it in Keras and re-save it "
            "with model.save('A.keras')"
        )
    kind = _zip_kind(path)
    if path.suffix == ".keras" or kind == "keras":
        return load_keras(path)
    if kind == "skops" or path.suffix == ".skops":
        return as_batch_model(_load_skops(path), str(path))
    if not trust_pickle:
        raise TransferError(
            f"{path} is not a skops, .keras or streamlearn state file: loading it would "
            "unpickle it (joblib/pickle), which runs any code it holds; pass --trust-pickle "
            "if you trust who wrote it, or save A with skops (streamlearn pretrain writes "
            ".skops)"
        )
    import joblib  # joblib also reads plain pickle files

    try:
        obj = joblib.load(path)
    except Exception as exc:  # unpickling can raise almost anything
        raise TransferError(f"cannot read model A from {path}: {exc}") from exc
    if isinstance(obj, dict) and "model" in obj:
        return as_batch_model(obj["model"], f"checkpoint {path}")
    return as_batch_model(obj, str(path))


def _zip_kind(path: Path) -> str | None:
    """``"skops"`` or ``"keras"`` for the zip files those write, else None (a pickle, maybe)."""
    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return None
    if "schema.json" in names:
        return "skops"
    if "config.json" in names:
        return "keras"
    return None


def skops_trusted() -> list[str]:
    """The types a skops file of model A may hold beyond skops' own safe ones.

    Exactly the models ``as_batch_model`` takes from scikit-learn, the scaler and pipeline
    around them, the optimizers a fitted ``MLPRegressor`` or ``MLPClassifier`` keeps and the
    label binarizer of the latter.
    """
    from sklearn import linear_model
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import LabelBinarizer, StandardScaler

    classes = [MLPRegressor, Pipeline, StandardScaler, AdamOptimizer, SGDOptimizer]
    classes += [MLPClassifier, LabelBinarizer]
    linear = _SKLEARN_LINEAR | {"LogisticRegression", "SGDClassifier"}
    classes += [getattr(linear_model, name) for name in sorted(linear)]
    return [f"{cls.__module__}.{cls.__qualname__}" for cls in classes]


def _load_skops(path: Path) -> Any:
    """Read a skops file, refusing any type outside skops' safe ones and ``skops_trusted``."""
    try:
        import skops.io as sio
    except ImportError as exc:
        raise TransferError(f"reading {path} needs skops: pip install skops") from exc
    trusted = skops_trusted()
    try:
        refused = sorted(set(sio.get_untrusted_types(file=path)) - set(trusted))
    except Exception as exc:  # a broken archive or schema
        raise TransferError(f"{path} is not a readable skops file: {exc}") from exc
    if refused:
        raise TransferError(
            f"{path} holds types streamlearn does not load (untrusted by skops): "
            f"{', '.join(refused)}"
        )
    try:
        return sio.load(path, trusted=trusted)
    except Exception as exc:  # skops raises its own errors, and TypeError on untrusted types
        raise TransferError(f"cannot read model A from {path}: {exc}") from exc


def _load_checkpoint(path: Path, trust: bool) -> tuple[Any, ClassSpace | None]:
    """The model held by a streamlearn checkpoint (a state directory or one generation file),
    and a classifier's class space.

    Its signature is checked with the directory's key before anything is unpickled; a
    directory another user owns needs ``trust`` (``--trust-pickle``).
    """
    from streamlearn import state as checkpoint
    from streamlearn.classify.learner import ClassLearner

    directory = path if path.is_dir() else path.parent
    try:
        checkpoint.check_owner(directory, trust=trust)
        if path.is_dir():
            loaded = checkpoint.CheckpointStore(path, lock=False, trust=trust).load()
            if loaded is None:
                raise TransferError(f"no checkpoint in state directory {path}")
            state = loaded.state
        else:
            key = checkpoint.state_key(directory, create=False, trust=trust)
            state = checkpoint.decode(path.read_bytes(), key)
    except (checkpoint.CheckpointError, OSError, pickle.UnpicklingError) as exc:
        raise TransferError(f"cannot read checkpoint {path}: {exc}") from exc
    if "learner" in state:
        learner = state["learner"]
        return learner.model, learner.classes if isinstance(learner, ClassLearner) else None
    if "model" in state:
        return state["model"], None
    raise TransferError(f"checkpoint {path} holds no model")


def as_batch_model(
    obj: Any, where: str = "model A", classes: ClassSpace | None = None
) -> BatchModel:
    """Model A from an object in memory (what ``load_batch_model`` does after unpickling).

    ``classes``: the class space of the classification run that learned ``obj`` (a state
    dir's), which names a binary classifier's ``False``/``True``.

    Examples
    --------
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> a = as_batch_model(SGDRegressor(initial_weights={"x": 2.0}, initial_intercept=1.0))
    >>> a.kind, a.feature_names, a.predict_one({"x": 3.0})
    ('linear', ('x',), 7.0)
    """
    module = type(obj).__module__
    if module.startswith("sklearn"):
        return _from_sklearn(obj, where)
    if isinstance(final_estimator(obj), base.Classifier):  # a pipeline ending in one too
        own = class_loaders.from_own_classifier(obj, classes, where)
        return own or class_loaders.from_river_classifier(obj, classes, where)
    if isinstance(obj, base.Estimator):
        return _from_river(obj, where)
    raise TransferError(
        f"{where} holds a {type(obj).__module__}.{type(obj).__name__}, which is not a model A "
        "can be: use a scikit-learn model or pipeline, a River model, a streamlearn "
        "checkpoint or a Keras .keras file"
    )


def _unpipe(obj: Any, where: str) -> tuple[Any, FloatArray | None, FloatArray | None]:
    """A scikit-learn model, or a pipeline's last step and its one ``StandardScaler``'s
    mean and scale (None without one)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(obj, Pipeline):
        return obj, None, None
    steps = [step for _, step in obj.steps if step not in (None, "passthrough")]
    *transforms, model = steps
    if len(transforms) > 1 or (transforms and not isinstance(transforms[0], StandardScaler)):
        kinds = ", ".join(type(step).__name__ for step in transforms)
        raise TransferError(
            f"{where}: a pipeline may hold at most one StandardScaler before the model; "
            f"found {kinds}"
        )
    if not transforms:
        return model, None, None
    scaler = transforms[0]
    if not hasattr(scaler, "n_features_in_"):
        raise TransferError(f"{where}: the StandardScaler is not fitted")
    n = scaler.n_features_in_
    mean = np.array(scaler.mean_, dtype=np.float64) if scaler.with_mean else np.zeros(n)
    scale = np.array(scaler.scale_, dtype=np.float64) if scaler.with_std else np.ones(n)
    return model, mean, scale


def _from_sklearn(obj: Any, where: str) -> BatchModel:
    """A scikit-learn model or pipeline as model A.

    scikit-learn sets a model's learned attributes (``coef_``, ``feature_names_in_``...) only
    in ``fit``, so their presence is how it tells a fitted model (its own ``check_is_fitted``
    looks the same way): the ``hasattr`` checks below probe a third-party object, not a seam.
    """
    model, mean, scale = _unpipe(obj, where)
    scaling = (mean, scale)
    name = type(model).__name__
    origin = f"sklearn {name}" + (" (with StandardScaler)" if scale is not None else "")
    # A pipeline reports the names its first step saw, which are the stream's names.
    names = getattr(obj, "feature_names_in_", None)
    feature_names = None if names is None else tuple(str(n) for n in names)

    if name in class_loaders.SKLEARN_CLASSIFIERS:
        if not hasattr(model, "classes_"):
            raise TransferError(f"{where}: the {name} is not fitted")
        rate = (
            _sklearn_mlp_rate(model)
            if name == "MLPClassifier"
            else _sklearn_sgd_rate(model)
            if name == "SGDClassifier"
            else None
        )
        return class_loaders.from_sklearn_classifier(
            model, origin, feature_names, scaling, rate, where
        )
    if name == "MLPRegressor":
        if not hasattr(model, "coefs_"):
            raise TransferError(f"{where}: the MLPRegressor is not fitted")
        if model.coefs_[-1].shape[1] != 1:
            raise TransferError(f"{where}: A predicts {model.coefs_[-1].shape[1]} targets, not 1")
        rate = _sklearn_mlp_rate(model)
        out = model.out_activation_
        return class_loaders.sklearn_mlp(model, origin, feature_names, rate, out, scaling=scaling)
    if name in _SKLEARN_LINEAR:
        if not hasattr(model, "coef_"):
            raise TransferError(f"{where}: the {name} is not fitted")
        coef = np.array(model.coef_, dtype=np.float64)
        if coef.ndim == 2 and coef.shape[0] != 1:
            raise TransferError(f"{where}: A predicts {coef.shape[0]} targets, not 1")
        coef = coef.reshape(-1, 1)
        intercept = np.array(model.intercept_, dtype=np.float64).reshape(1)
        rate = _sklearn_sgd_rate(model) if name == "SGDRegressor" else None
        return BatchModel.linear(origin, feature_names, coef, intercept, rate, scaling=scaling)
    raise TransferError(
        f"{where} holds a scikit-learn {name}; supported are MLPRegressor, the linear "
        f"regressors ({', '.join(sorted(_SKLEARN_LINEAR))}) and the classifiers "
        f"{', '.join(sorted(class_loaders.SKLEARN_CLASSIFIERS))}"
    )


def _sklearn_mlp_rate(model: Any) -> float | None:
    """The step size a fitted scikit-learn ``MLPRegressor`` ended with; None for L-BFGS.

    Adam's step per weight is about ``learning_rate_init`` throughout; the SGD solver's
    rate is its optimizer's current one (lowered by ``invscaling`` and ``adaptive``), which
    scikit-learn keeps after ``fit`` for ``partial_fit`` (read with ``getattr``: a private
    attribute of a third-party object, absent from models pickled without it).
    """
    if model.solver == "adam":
        return float(model.learning_rate_init)
    if model.solver == "sgd":
        optimizer = getattr(model, "_optimizer", None)
        rate = getattr(optimizer, "learning_rate", None)
        return float(rate) if isinstance(rate, int | float) else float(model.learning_rate_init)
    return None


def _sklearn_sgd_rate(model: Any) -> float | None:
    """The step size a fitted scikit-learn ``SGDRegressor`` ended with, where it is known.

    ``constant`` and ``adaptive`` start at ``eta0`` (``adaptive`` may have lowered it since,
    which scikit-learn does not keep); ``invscaling`` is ``eta0 / t^power_t`` after ``t``
    updates; ``optimal`` depends on an internal offset: None.
    """
    schedule = model.learning_rate
    if schedule in ("constant", "adaptive"):
        return float(model.eta0)
    if schedule == "invscaling":
        return float(model.eta0 / max(float(model.t_), 1.0) ** model.power_t)
    return None


def _from_river(obj: base.Estimator, where: str) -> BatchModel:
    from streamlearn.models.sgd import SGDRegressor

    # The project's own estimators expose their layers, so every transfer mode applies to them.
    if isinstance(obj, MLPRegressor):
        if obj.features_ is None:
            raise TransferError(f"{where}: the MLPRegressor has learned nothing yet")
        n_hidden = len(obj.hidden)
        hidden_acts = (
            (obj.activation,) * n_hidden if isinstance(obj.activation, str) else obj.activation
        )
        return BatchModel(
            "mlp",
            "streamlearn MLPRegressor",
            tuple(str(f) for f in obj.features_),
            len(obj.features_),
            tuple(c.copy() for c in obj.coefs_),
            tuple(b.copy() for b in obj.intercepts_),
            (*hidden_acts, obj.output_activation),
            None if obj.input_mean is None else obj.input_mean.copy(),
            None if obj.input_scale is None else obj.input_scale.copy(),
            learning_rate=None if obj.head == "rls" else obj.lr,
        )
    if isinstance(obj, SGDRegressor):
        names = tuple(str(name) for name in obj.weights)
        coef = np.array([obj.weights[n] for n in obj.weights], dtype=np.float64).reshape(-1, 1)
        intercept = np.array([obj.intercept])
        return BatchModel.linear("streamlearn SGDRegressor", names, coef, intercept, obj.lr)
    from river import compose

    last = list(obj.steps.values())[-1] if isinstance(obj, compose.Pipeline) else obj
    if not isinstance(last, base.Regressor):
        raise TransferError(f"{where} holds a River {type(last).__name__}, not a regressor")
    return BatchModel("river", f"River {type(obj).__name__}", None, None, river_model=obj)
