"""Trust boundaries: nothing a reader did not write itself is unpickled without being told to.

A checkpoint is signed (HMAC-SHA256, the state dir's key); a forged one is refused by every
command that reads a state dir, and the code it carries never runs. Model A loads from safe
formats (skops, Keras, a signed state dir); a pickle needs ``--trust-pickle``. A state dir
another user owns is read only with ``--trust``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import pickle
import stat
import struct
import subprocess
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from streamhelpers import cli, make_regression, write_csv

FEATURES = ["x0", "x1", "x2"]


class Planted:
    """A pickle that creates ``marker`` when it is loaded: what a forger would plant."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def old_frame(payload: bytes) -> bytes:
    """A checkpoint frame as streamlearn wrote it before signing: magic, 1, SHA-256, size."""
    digest = hashlib.sha256(payload).digest()
    return struct.pack(">8sI32sQ", b"SLCKPT\x00\x01", 1, digest, len(payload)) + payload


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    X, y, _ = make_regression(300, d=3, seed=4)
    path = tmp_path / "rows.csv"
    write_csv(path, X, y)
    return path


def _forged_state(folder: Path, marker: Path) -> Path:
    """A state dir whose one generation is a valid old-style frame of a planted pickle."""
    state = folder / "forged"
    state.mkdir()
    payload = pickle.dumps({"learner": Planted(marker), "source": {}}, protocol=5)
    (state / "gen-0000000001.ckpt").write_bytes(old_frame(payload))
    return state


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "Error" in line]
    assert errors, result.stderr
    return result.stderr


@pytest.mark.parametrize("command", ["run", "replay", "inspect", "report", "warm-start"])
def test_a_forged_checkpoint_never_runs_its_code(tmp_path: Path, rows: Path, command: str) -> None:
    marker = tmp_path / "PWNED"
    state = _forged_state(tmp_path, marker)
    args = {
        "run": ["run", str(rows), "--state-dir", str(state)],
        "replay": ["replay", str(rows), "--state-dir", str(state)],
        "inspect": ["inspect", str(state)],
        "report": ["report", str(state), "--out", str(tmp_path / "c.png")],
        "warm-start": ["replay", str(rows), "--warm-start", str(state)],
    }[command]
    result = cli(*args, check=False, timeout=60)
    assert not marker.exists(), "the forged checkpoint's code ran"
    stderr = _one_line_error(result)
    assert "streamlearn sign" in stderr or "--trust-pickle" in stderr, stderr


def test_a_checkpoint_signed_with_another_key_falls_back_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from streamlearn.state import CheckpointStore, StateKey, encode

    store = CheckpointStore(tmp_path)
    store.save({"n": 1})
    store.save({"n": 2})
    # The forger knows the format but not the key: a valid frame signed with another key.
    store.path(2).write_bytes(encode({"n": 666}, StateKey(os.urandom(32))))
    with caplog.at_level(logging.WARNING):
        loaded = store.load()
    assert loaded is not None and loaded.state == {"n": 1} and loaded.generation == 1
    assert "gen-0000000002" in loaded.skipped[0] and "another key" in loaded.skipped[0]
    assert "OLDER CHECKPOINT" in caplog.text
    store.close()


def test_a_wrong_hmac_falls_back_and_none_verifying_is_an_error(tmp_path: Path) -> None:
    from streamlearn.state import CheckpointError, CheckpointStore

    store = CheckpointStore(tmp_path)
    store.save({"n": 1})
    store.save({"n": 2})
    for generation in (2, 1):
        blob = bytearray(store.path(generation).read_bytes())
        blob[30] ^= 1  # a bit of the HMAC
        store.path(generation).write_bytes(bytes(blob))
        if generation == 2:
            loaded = store.load()
            assert loaded is not None and loaded.state == {"n": 1}
            assert "checksum mismatch" in loaded.skipped[0]
    with pytest.raises(CheckpointError, match="refusing to start from an empty model"):
        store.load()
    store.close()
    result = cli("inspect", str(tmp_path), check=False)
    assert "refusing to start from an empty model" in _one_line_error(result)


def test_the_key_is_made_once_0600_and_a_loose_or_foreign_key_is_refused(tmp_path: Path) -> None:
    from streamlearn.state import KEY_NAME, CheckpointError, CheckpointStore

    store = CheckpointStore(tmp_path / "s")
    store.save({"n": 1})
    key = tmp_path / "s" / KEY_NAME
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    secret = key.read_bytes()
    store.close()
    CheckpointStore(tmp_path / "s").close()
    assert key.read_bytes() == secret  # made at first use only
    key.chmod(0o640)
    with pytest.raises(CheckpointError, match="chmod 600"):
        CheckpointStore(tmp_path / "s", lock=False).load()
    key.chmod(0o600)
    assert CheckpointStore(tmp_path / "s", lock=False).load().state == {"n": 1}


def test_a_state_dir_deleted_under_the_daemon_gets_its_key_back(tmp_path: Path) -> None:
    import shutil

    from streamlearn.state import KEY_NAME, CheckpointStore

    store = CheckpointStore(tmp_path / "s")
    store.save({"n": 1})
    shutil.rmtree(tmp_path / "s")
    store.save({"n": 2})
    assert (tmp_path / "s" / KEY_NAME).exists()
    store.close()
    assert CheckpointStore(tmp_path / "s", lock=False).load().state == {"n": 2}


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_streamlearn_state_key_signs_instead_of_a_key_file(
    tmp_path: Path, rows: Path, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    from streamlearn.state import KEY_NAME, CheckpointError, CheckpointStore

    secret = os.urandom(32)
    text = secret.hex() if encoding == "hex" else base64.b64encode(secret).decode()
    monkeypatch.setenv("STREAMLEARN_STATE_KEY", text)
    store = CheckpointStore(tmp_path)
    store.save({"n": 1})
    store.close()
    assert not (tmp_path / KEY_NAME).exists()
    assert CheckpointStore(tmp_path, lock=False).load().state == {"n": 1}
    blob = (tmp_path / "gen-0000000001.ckpt").read_bytes()
    assert hmac.new(secret, blob[60:], hashlib.sha256).digest() in blob[:60]
    monkeypatch.setenv("STREAMLEARN_STATE_KEY", os.urandom(32).hex())
    with pytest.raises(CheckpointError, match="another key"):
        CheckpointStore(tmp_path, lock=False).load()
    monkeypatch.setenv("STREAMLEARN_STATE_KEY", "too short")
    with pytest.raises(CheckpointError, match="STREAMLEARN_STATE_KEY"):
        CheckpointStore(tmp_path, lock=False)
    # Through the command line too: inspect reads it with the variable, not without.
    monkeypatch.setenv("STREAMLEARN_STATE_KEY", text)
    cli("replay", str(rows), "--state-dir", str(tmp_path / "cli"))
    assert not (tmp_path / "cli" / KEY_NAME).exists()
    assert cli("inspect", str(tmp_path / "cli")).returncode == 0
    monkeypatch.delenv("STREAMLEARN_STATE_KEY")
    refused = _one_line_error(cli("inspect", str(tmp_path / "cli"), check=False))
    assert "STREAMLEARN_STATE_KEY" in refused


def test_the_forked_child_signs_as_the_parent_does(tmp_path: Path) -> None:
    from streamlearn.state import BackgroundWriter, CheckpointStore, StateKey
    from streamlearn.state.child import CHILD_SHA256

    secret = os.urandom(40)
    payload = os.urandom(100_003)
    expected = hmac.new(secret, payload, hashlib.sha256).digest()
    assert StateKey(secret).mac(payload, CHILD_SHA256) == expected
    assert StateKey(secret).mac(payload) == expected
    long_secret = os.urandom(100)  # longer than a block: hashed first, as RFC 2104 says
    assert StateKey(long_secret).mac(payload) == hmac.new(long_secret, payload, "sha256").digest()
    store = CheckpointStore(tmp_path)
    writer = BackgroundWriter(store, fork="always")
    assert writer.snapshot({"n": 1}, tag=1) == "fork"
    writer.snapshot({"n": 2}, tag=2)
    writer.close()
    assert store.path(1).read_bytes() == store.encode({"n": 1})
    assert store.load().state == {"n": 2}
    store.close()


def test_old_unsigned_checkpoints_are_accepted_once_with_sign(tmp_path: Path, rows: Path) -> None:
    from streamlearn.state import CheckpointStore, dump

    state = tmp_path / "old"
    state.mkdir()
    (state / "gen-0000000001.ckpt").write_bytes(old_frame(dump({"n": 1})))
    refused = _one_line_error(cli("inspect", str(state), check=False))
    assert f"streamlearn sign {state}" in refused
    signed = cli("sign", str(state))
    assert "signed 1" in signed.stdout
    assert CheckpointStore(state, lock=False).load().state == {"n": 1}
    assert "signed 0" in cli("sign", str(state)).stdout  # once is enough
    # A corrupt old frame is not signed: sign checks the old checksum first.
    blob = bytearray(old_frame(dump({"n": 2})))
    blob[-1] ^= 1
    (state / "gen-0000000002.ckpt").write_bytes(bytes(blob))
    assert "checksum" in _one_line_error(cli("sign", str(state), check=False))


# -- model A ---------------------------------------------------------------------------------


def _fit(model: object, rows: Path) -> object:
    frame = pd.read_csv(rows)
    return model.fit(frame[FEATURES], frame["y"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("flag", [[], pytest.param(["--trust-pickle"], marks=pytest.mark.slow)])
def test_a_pickled_a_needs_trust_pickle(tmp_path: Path, rows: Path, flag: list[str]) -> None:
    a = tmp_path / "A.joblib"
    joblib.dump(_fit(make_pipeline(StandardScaler(), Ridge()), rows), a)
    result = cli("replay", str(rows), "--warm-start", str(a), *flag, check=False)
    if flag:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 2, result.stderr  # a usage error
        assert "--trust-pickle" in result.stderr and "runs" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_skops_a_loads_without_a_flag(tmp_path: Path, rows: Path) -> None:
    import skops.io

    from streamlearn.models.transfer import load_batch_model

    model = _fit(make_pipeline(StandardScaler(), Ridge()), rows)
    a = tmp_path / "A.skops"
    skops.io.dump(model, a)
    loaded = load_batch_model(a)
    frame = pd.read_csv(rows).head(5)
    got = [loaded.predict_one(x) for x in frame[FEATURES].to_dict("records")]
    np.testing.assert_allclose(got, model.predict(frame[FEATURES]), atol=1e-9)  # type: ignore[attr-defined]
    assert cli("replay", str(rows), "--warm-start", str(a)).returncode == 0


@pytest.mark.slow
def test_a_skops_file_with_an_untrusted_type_is_refused(tmp_path: Path, rows: Path) -> None:
    import skops.io

    from streamlearn.models.transfer import TransferError, load_batch_model

    model = make_pipeline(FunctionTransformer(os.system), Ridge())
    a = tmp_path / "A.skops"
    skops.io.dump(model, a)
    with pytest.raises(TransferError, match=r"untrusted|does not load"):
        load_batch_model(a)
    result = cli("replay", str(rows), "--warm-start", str(a), check=False)
    assert result.returncode == 2 and "system" in result.stderr, result.stderr


@pytest.mark.slow
def test_a_pickled_teacher_needs_trust_pickle(tmp_path: Path, rows: Path) -> None:
    a = tmp_path / "A.joblib"
    joblib.dump(_fit(Ridge(), rows), a)
    args = ["replay", str(rows), "--pseudo-label", "--teacher", f"warm:{a}"]
    refused = cli(*args, check=False)
    assert refused.returncode == 2 and "--trust-pickle" in refused.stderr, refused.stderr
    assert cli(*args, "--trust-pickle").returncode == 0


@pytest.mark.slow
def test_pretrain_writes_skops_that_warm_starts_without_a_flag(tmp_path: Path, rows: Path) -> None:
    out = tmp_path / "A.skops"
    cli("pretrain", str(rows), "--kind", "linear", "--out", str(out))
    import zipfile

    assert zipfile.is_zipfile(out)  # skops, not a pickle
    assert cli("replay", str(rows), "--warm-start", str(out)).returncode == 0


# -- a state dir of another user ------------------------------------------------------------


def _other_users_state(tmp_path: Path, rows: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("making a state dir of another user needs root (CI runs as root)")
    state = tmp_path / "theirs"
    cli("replay", str(rows), "--state-dir", str(state))
    for path in [state, *state.iterdir()]:
        os.chown(path, 65534, 65534)
    tmp_path.chmod(0o755)
    return state


@pytest.mark.slow
def test_inspect_and_report_of_another_users_state_need_trust(tmp_path: Path, rows: Path) -> None:
    state = _other_users_state(tmp_path, rows)
    png = tmp_path / "c.png"
    for args in (["inspect", str(state)], ["report", str(state), "--out", str(png)]):
        refused = cli(*args, check=False)
        stderr = _one_line_error(refused)
        assert "owned by uid 65534" in stderr and "--trust" in stderr, stderr
        assert cli(*args, "--trust").returncode == 0


@pytest.mark.slow
def test_a_warm_start_from_another_users_state_needs_trust_pickle(
    tmp_path: Path, rows: Path
) -> None:
    state = _other_users_state(tmp_path, rows)
    refused = cli("replay", str(rows), "--warm-start", str(state), check=False)
    assert refused.returncode == 2 and "--trust-pickle" in refused.stderr, refused.stderr
    assert cli("replay", str(rows), "--warm-start", str(state), "--trust-pickle").returncode == 0


def test_help_says_why(tmp_path: Path) -> None:
    run_help = cli("run", "--help").stdout
    assert "--trust-pickle" in run_help and "runs" in run_help
    assert "--trust" in cli("inspect", "--help").stdout
