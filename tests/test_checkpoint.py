"""Checkpoints: atomic generations with checksums, loud fallback, exclusive lock."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from streamlearn.state import (
    CheckpointError,
    CheckpointStore,
    StateKey,
    StateLocked,
    decode,
    encode,
)


def test_keeps_the_last_two_generations(tmp_path):
    store = CheckpointStore(tmp_path)
    for i in range(5):
        store.save({"n": i})
    assert store.generations() == [4, 5]
    assert store.load().state == {"n": 4}
    assert not list(tmp_path.glob("*.tmp.*"))


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_corrupt_latest_falls_back_to_previous_loudly(tmp_path, caplog, damage):
    store = CheckpointStore(tmp_path)
    store.save({"n": 1})
    store.save({"n": 2})
    latest = store.path(2)
    blob = bytearray(latest.read_bytes())
    if damage == "flip":
        blob[-3] ^= 0xFF
    elif damage == "truncate":
        blob = blob[: len(blob) // 2]
    else:
        blob = bytearray()
    latest.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING):
        loaded = store.load()
    assert loaded.state == {"n": 1} and loaded.generation == 1
    assert loaded.skipped and "gen-0000000002" in loaded.skipped[0]
    assert "OLDER CHECKPOINT" in caplog.text


def test_all_generations_corrupt_is_an_error_never_an_empty_model(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save({"n": 1})
    store.path(1).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="refusing to start from an empty model"):
        store.load()


def test_checksum_detects_any_change():
    key = StateKey(bytes(range(32)))
    blob = encode({"weights": [1.0, 2.0]}, key)
    assert decode(blob, key) == {"weights": [1.0, 2.0]}
    with pytest.raises(CheckpointError, match="checksum"):
        decode(blob[:-1] + bytes([blob[-1] ^ 1]), key)


def test_a_second_process_cannot_take_the_lock(tmp_path):
    store = CheckpointStore(tmp_path)
    code = (
        "import sys\n"
        "from streamlearn.state import CheckpointStore, StateLocked\n"
        "try:\n"
        f"    CheckpointStore({str(tmp_path)!r})\n"
        "except StateLocked as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 3
    assert "in use by another streamlearn" in result.stdout
    store.close()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0


def test_lock_in_the_same_process_is_also_refused(tmp_path):
    store = CheckpointStore(tmp_path)
    with pytest.raises(StateLocked):
        CheckpointStore(tmp_path)
    store.close()
    store.close()  # twice is fine
