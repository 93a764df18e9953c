"""Pretraining model A: the saved file, its loss, the command line and its error messages."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
from click.testing import CliRunner

from streamlearn.cli.pretrain import pretrain_command
from streamlearn.models.loaders import skops_trusted
from streamlearn.models.pretrain import PretrainError, pretrain
from streamlearn.models.transfer import TransferError, load_batch_model
from streamlearn.producers.transfer_data import make_transfer_pair, write_csv


@pytest.fixture
def source_csv(tmp_path: Path) -> Path:
    (x, y), _ = make_transfer_pair(n_source=300, n_target=1)
    return write_csv(tmp_path / "source.csv", x, y)


def test_mlp_file_loads_back_and_loss_is_the_training_mse(source_csv: Path, tmp_path: Path) -> None:
    result = pretrain(
        source_csv, out=tmp_path / "models" / "A.skops", hidden=(8, 4), epochs=15, seed=3
    )
    assert result.model_path == tmp_path / "models" / "A.skops"
    assert result.kind == "mlp" and result.features == ("x",) and result.target == "y"
    assert result.n_rows == 300
    assert result.epochs_run == 15  # every pass is run, as Keras' fit(epochs=15)
    model = skops.io.load(result.model_path, trusted=skops_trusted())
    assert model.hidden_layer_sizes == (8, 4) and model.random_state == 3
    assert list(model.feature_names_in_) == ["x"]
    frame = pd.read_csv(source_csv)
    predictions = model.predict(frame[["x"]])
    assert result.loss == pytest.approx(float(np.mean((predictions - frame["y"]) ** 2)), rel=1e-12)
    # The saved model is a valid model A for transfer, with its feature names.
    a = load_batch_model(result.model_path)
    assert a.feature_names == ("x",)
    assert a.predict_one({"x": 0.7}) == pytest.approx(model.predict(pd.DataFrame({"x": [0.7]}))[0])
    assert not list(tmp_path.glob("models/.*tmp*"))  # the temporary file was renamed away


def test_same_seed_same_model(source_csv: Path, tmp_path: Path) -> None:
    first = pretrain(source_csv, out=tmp_path / "a.skops", hidden=(5,), epochs=5, seed=1)
    second = pretrain(source_csv, out=tmp_path / "b.skops", hidden=(5,), epochs=5, seed=1)
    other = pretrain(source_csv, out=tmp_path / "c.skops", hidden=(5,), epochs=5, seed=2)
    assert first.loss == second.loss
    assert other.loss != first.loss


def test_linear_kind_fits_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50), "note": 0.0})
    frame["target"] = 2.0 * frame["a"] - 3.0 * frame["b"] + 1.5
    frame.to_csv(tmp_path / "lin.csv", index=False)
    result = pretrain(
        tmp_path / "lin.csv",
        target="target",
        out=tmp_path / "L.skops",
        kind="linear",
        features=["b", "a"],
    )
    assert result.features == ("b", "a") and result.epochs_run == 1
    assert result.loss < 1e-20
    model = skops.io.load(tmp_path / "L.skops")
    assert model.coef_.tolist() == pytest.approx([-3.0, 2.0])
    assert model.intercept_ == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("x,y\n1,2\n2,3\n", {"target": "label"}, "no target column 'label'; its columns are x, y"),
        ("x,y\n1,2\n2,3\n", {"features": ["x", "z"]}, r"no column\(s\) z"),
        ("x,y\n1,2\n2,3\n", {"features": ["y"]}, "cannot also be a feature"),
        ("y\n1\n2\n", {}, "no feature column besides 'y'"),
        ("x,y\na,2\nb,3\n", {}, "column 'x' .* is not numeric"),
        ("x,y\n1,2\n,3\n4,5\n", {}, r"1 row\(s\) with missing or infinite values"),
        ("x,y\n1,2\n", {}, "at least 2 are needed"),
        ("", {}, "not a readable CSV"),
        ("x,y\n1,2\n2,3\n", {"kind": "forest"}, "kind must be 'mlp' or 'linear'"),
        ("x,y\n1,2\n2,3\n", {"activation": "softmax"}, "unknown activation"),
        ("x,y\n1,2\n2,3\n", {"hidden": ()}, "one or more positive layer sizes"),
        ("x,y\n1,2\n2,3\n", {"epochs": 0}, "epochs must be a positive integer"),
    ],
)
def test_user_mistakes_are_explained(
    tmp_path: Path, content: str, kwargs: dict, message: str
) -> None:
    (tmp_path / "d.csv").write_text(content)
    with pytest.raises(PretrainError, match=message):
        pretrain(
            tmp_path / "d.csv", out=tmp_path / "A.skops", epochs=kwargs.pop("epochs", 2), **kwargs
        )
    assert not (tmp_path / "A.skops").exists()


def test_command_trains_and_prints_the_loss(source_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "A.skops"
    result = CliRunner().invoke(
        pretrain_command,
        [str(source_csv), "--out", str(out), "--hidden", "6,3", "--epochs", "5", "--seed", "4"],
    )
    assert result.exit_code == 0, result.output
    printed = re.search(r"training loss \(MSE\): (\S+)", result.output)
    assert printed is not None
    model = skops.io.load(out, trusted=skops_trusted())
    assert model.hidden_layer_sizes == (6, 3)
    frame = pd.read_csv(source_csv)
    mse = float(np.mean((model.predict(frame[["x"]]) - frame["y"]) ** 2))
    assert float(printed.group(1)) == pytest.approx(mse, rel=1e-5)
    assert f"saved model A to {out}" in result.output


def test_command_linear_and_env(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("u,v,t\n0,1,1\n1,0,2\n1,1,3\n2,2,6\n")
    result = CliRunner().invoke(
        pretrain_command,
        [str(tmp_path / "d.csv"), "--kind", "linear", "--out", str(tmp_path / "L.skops")],
        env={"STREAMLEARN_TARGET": "t", "STREAMLEARN_FEATURES": "v,u"},
    )
    assert result.exit_code == 0, result.output
    assert list(skops.io.load(tmp_path / "L.skops").feature_names_in_) == ["v", "u"]


def test_the_default_is_skops_and_a_pickle_is_written_only_when_named(
    source_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(pretrain_command, [str(source_csv), "--kind", "linear"])
    assert result.exit_code == 0, result.output
    assert "saved model A to A.skops" in result.output
    assert load_batch_model(tmp_path / "A.skops").feature_names == ("x",)  # no flag needed
    pickled = pretrain(source_csv, out=tmp_path / "A.joblib", kind="linear").model_path
    assert list(joblib.load(pickled).feature_names_in_) == ["x"]  # a real joblib file
    with pytest.raises(TransferError, match="--trust-pickle"):
        load_batch_model(pickled)
    assert load_batch_model(pickled, trust_pickle=True).feature_names == ("x",)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--hidden", "50,x"], 2, "is not a comma-separated list of layer sizes"),
        (["--hidden", "50,0"], 2, "layer sizes must be positive"),
        (["--epochs", "0"], 2, "0 is not in the range x>=1"),
        (["--activation", "softmax"], 2, "'softmax' is not one of"),
        (["--kind", "tree"], 2, "'tree' is not one of"),
        (["--features", ","], 2, "give at least one column name"),
        (["--target", "label"], 1, "no target column 'label'"),
    ],
)
def test_command_mistakes(
    source_csv: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = CliRunner().invoke(
        pretrain_command, [str(source_csv), "--out", str(tmp_path / "A.skops"), *args]
    )
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_command_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(pretrain_command, [str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_importing_the_command_stays_light() -> None:
    """The CLI imports this module to list and run commands: no sklearn or pandas at import."""
    code = (
        "import sys, streamlearn.cli.pretrain; "
        "print(sorted(m for m in ('sklearn', 'pandas', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_replay_and_inspect_import_no_skops_sklearn_or_torch(tmp_path: Path) -> None:
    """skops imports every scikit-learn estimator and, through scikit-learn's walk of its
    modules, torch (about 5 s of CPU): only a run that reads or writes a model A file pays it."""
    data = tmp_path / "s.csv"
    data.write_text("a,b,y\n" + "".join(f"{i % 3},{i % 4},{i % 5}\n" for i in range(300)))
    code = (
        "import sys\n"
        "from streamlearn.cli import main\n"
        f"for args in (['replay', {str(data)!r}, '--state-dir', {str(tmp_path / 'st')!r}],\n"
        f"             ['inspect', {str(tmp_path / 'st')!r}, '--json']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        "print(sorted(m for m in ('skops', 'sklearn', 'torch', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
