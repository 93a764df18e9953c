"""Model A from a Keras 3 ``.keras`` file, read with zipfile, json and h5py: Keras is not needed.

A ``.keras`` file is a zip of ``config.json`` (the layers) and ``model.weights.h5`` (their
weights). A ``Sequential`` stack of ``Dense`` layers (with dropout-like layers, which are the
identity at inference time) carries over. A classifier ends in a softmax, or in one sigmoid
unit compiled with a cross-entropy loss; its classes are not in the file (``--classes``).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from streamlearn.models.activations import ACTIVATIONS
from streamlearn.models.batch import BatchModel, FloatArray, Output, TransferError

__all__ = ["load_keras"]

# Keras layers that are the identity at inference time: they hold no weights to carry over.
_KERAS_PASSTHROUGH = frozenset({"Dropout", "GaussianNoise", "GaussianDropout", "AlphaDropout"})


def load_keras(path: Path) -> BatchModel:
    """Read a Keras 3 ``.keras`` file (a zip of config.json and model.weights.h5) without Keras."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights_blob = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, OSError, json.JSONDecodeError) as exc:
        raise TransferError(f"{path} is not a readable .keras file: {exc}") from exc
    if config.get("class_name") != "Sequential":
        raise TransferError(
            f"{path}: only Keras Sequential models are supported, this is a "
            f"{config.get('class_name')}"
        )
    try:
        import h5py
    except ImportError as exc:
        raise TransferError(f"reading {path} needs h5py: pip install h5py") from exc
    layers = [layer for layer in config["config"]["layers"] if layer["class_name"] != "InputLayer"]
    coefs: list[FloatArray] = []
    intercepts: list[FloatArray] = []
    activations: list[str] = []
    used: dict[str, int] = {}
    with h5py.File(io.BytesIO(weights_blob), "r") as weights:
        for layer in layers:
            kind = layer["class_name"]
            # Keras names a layer's weight group after its class, in snake case, numbered in order
            # of appearance (dense, dense_1, ...): not after the layer's own name.
            snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in kind).lstrip("_")
            count = used.get(snake, 0)
            used[snake] = count + 1
            group = f"layers/{snake}" + (f"_{count}" if count else "")
            if kind in _KERAS_PASSTHROUGH:
                continue
            if kind != "Dense":
                raise TransferError(
                    f"{path}: layer {layer['config'].get('name')!r} is a {kind}; only Dense "
                    f"layers (and {', '.join(sorted(_KERAS_PASSTHROUGH))}) can be carried over"
                )
            cfg = layer["config"]
            activation = cfg.get("activation") or "linear"
            if not isinstance(activation, str) or activation not in (*ACTIVATIONS, "softmax"):
                raise TransferError(
                    f"{path}: layer {cfg.get('name')!r} uses activation {activation!r}; "
                    f"supported: {', '.join(sorted(ACTIVATIONS))} (and softmax on the output)"
                )
            try:
                kernel = np.array(weights[f"{group}/vars/0"], dtype=np.float64)
                bias = (
                    np.array(weights[f"{group}/vars/1"], dtype=np.float64)
                    if cfg.get("use_bias", True)
                    else np.zeros(kernel.shape[1])
                )
            except KeyError as exc:
                raise TransferError(f"{path}: no weights for layer {cfg.get('name')!r}") from exc
            if coefs and kernel.shape[0] != coefs[-1].shape[1]:
                raise TransferError(f"{path}: layer {cfg.get('name')!r} has an unexpected shape")
            coefs.append(kernel)
            intercepts.append(bias)
            activations.append(activation)
    if not coefs:
        raise TransferError(f"{path}: the model has no Dense layer")
    output = _output(path, config, activations, coefs[-1].shape[1])
    if output is not None:
        activations[-1] = "identity"  # B computes the logits; its output layer the rest
    return BatchModel(
        kind="mlp",
        origin="Keras Sequential",
        feature_names=None,  # Keras keeps no input names: the stream maps onto x0, x1, ...
        n_features=coefs[0].shape[0],
        coefs=tuple(coefs),
        intercepts=tuple(intercepts),
        activations=tuple(activations),
        learning_rate=_optimizer_rate(config),
        output=output,
    )


def _output(
    path: Path, config: dict[str, Any], activations: list[str], width: int
) -> Output | None:
    """A classifier's output, else None: a softmax; one sigmoid unit trained on a
    cross-entropy; or linear units trained on a cross-entropy ``from_logits`` (Keras applies
    the sigmoid or softmax in the loss: its ``predict`` answers logits, B probabilities)."""
    if "softmax" in activations[:-1]:
        raise TransferError(f"{path}: a softmax is supported on the output layer only")
    compiled = config.get("compile_config") or {}
    loss = compiled.get("loss") if isinstance(compiled, dict) else None
    from_logits = False
    if isinstance(loss, dict):  # a Loss object: {"class_name": "BinaryCrossentropy", ...}
        settings = loss.get("config")
        from_logits = isinstance(settings, dict) and settings.get("from_logits") is True
        loss = loss.get("class_name")
    name = loss.lower() if isinstance(loss, str) else ""
    cross_entropy = "crossentropy" in name
    logits = from_logits and cross_entropy and activations[-1] in ("linear", "identity")
    binary = name.startswith("binary")
    if activations[-1] == "softmax" or (logits and not binary):
        return "softmax"
    if (activations[-1] == "sigmoid" or logits) and cross_entropy:
        if width != 1:
            raise TransferError(
                f"{path}: A is a multi-label model ({width} independent sigmoid outputs); a "
                "stream record has one class: use a softmax output"
            )
        return "sigmoid"
    if width != 1:
        raise TransferError(f"{path}: A predicts {width} targets, not 1")
    return None


def _optimizer_rate(config: dict[str, Any]) -> float | None:
    """The learning rate of the optimizer the model was compiled with, when it is a number.

    A learning-rate schedule (a dict) ends somewhere its config does not say: None.

    >>> _optimizer_rate({"compile_config": {"optimizer": {"config": {"learning_rate": 0.002}}}})
    0.002
    >>> _optimizer_rate({}) is None
    True
    """
    compiled = config.get("compile_config") or {}
    optimizer = compiled.get("optimizer") if isinstance(compiled, dict) else None
    settings = optimizer.get("config") if isinstance(optimizer, dict) else None
    rate = settings.get("learning_rate") if isinstance(settings, dict) else None
    if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
        return float(f"{rate:.7g}")  # Keras keeps it in float32: 0.002 comes back 0.0020000001
    return None
