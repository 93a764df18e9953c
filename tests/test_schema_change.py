"""A changed CSV header is mapped by name, logged, or refused: never learned with columns swapped.

A rotated-in file whose header is ``b,a,y`` (after ``a,b,y``), or a second header row in a
concatenated CSV, switches the decoder's mapping by name; both record paths learn the same
weights as the numpy oracle of the seed's update on the correctly mapped rows. A header of
other features stops the daemon with a one-line error, or, with ``--on-schema-change
dead-letter``, sends its rows to the dead letters until a header of the model's features.
The mapping in force belongs to the position: a restart under the second header keeps it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from streamhelpers import cli, follow, inspect_json, sgd_oracle, sigterm, wait_for_seen
from streamlearn.app import build
from streamlearn.config import Settings
from streamlearn.fast import block as fastpath
from streamlearn.records import CsvDecoder, Rejected
from streamlearn.sources.base import Raw

LR = 0.01


def make_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns a, b and a target y = 3a - 2b + 1 + noise, as the file will say them."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = 3 * X[:, 0] - 2 * X[:, 1] + 1 + rng.normal(scale=0.1, size=n)
    X = np.array([[float(f"{v:.6f}") for v in row] for row in X])
    y = np.array([float(f"{v:.6f}") for v in y])
    return X, y


def section(columns: list[str], X: np.ndarray, y: np.ndarray, *, header: bool = True) -> bytes:
    """Rows of ``X`` (columns a, b; c repeats b) and ``y``, in the order ``columns`` names."""
    lines = [",".join(columns)] if header else []
    for (a, b), target in zip(X.tolist(), y.tolist(), strict=True):
        cells = {"a": a, "b": b, "c": b, "y": target}
        lines.append(",".join(f"{cells[name]:.6f}" for name in columns))
    return ("\n".join(lines) + "\n").encode()


def assert_oracle(summary: dict, X: np.ndarray, y: np.ndarray) -> None:
    theta, theta0, _ = sgd_oracle(X, y, lr=LR)
    learned = [summary["weights"]["a"], summary["weights"]["b"]]
    np.testing.assert_allclose(learned, theta, rtol=0, atol=1e-12)
    assert abs(summary["intercept"] - theta0) < 1e-12


def replay(path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool, **options: object):
    """Build and run a ``replay`` of ``path`` in this process; returns (summary, daemon)."""
    monkeypatch.setenv("STREAMLEARN_FASTPATH", "1" if fast else "0")
    settings = Settings.from_params(
        {"source": str(path), "lr": LR, "checkpoint_every": 3000, **options}, follow=False
    )
    app = build(settings)
    try:
        summary = app.daemon.run()
    finally:
        app.close()
    return summary, app.daemon


# -- the decoder ----------------------------------------------------------------------


def test_a_header_row_of_the_same_features_switches_the_mapping_by_name():
    decoder = CsvDecoder(["a", "b", "y"])
    assert decoder.plain
    swapped = Raw(b"b,a,y\n", offset=100)
    assert decoder.changes_schema(swapped)
    assert decoder.plain  # asking changes nothing
    assert decoder.decode(swapped) is None
    assert not decoder.plain and not decoder.changes_schema(swapped)
    record = decoder.decode(Raw(b"2,1,5\n", offset=106))
    assert record.x == {"a": 1.0, "b": 2.0} and list(record.x) == ["a", "b"]
    assert decoder.decode_batch([Raw(b"a,b,y\n", 112), Raw(b"1,2,5\n", 118)])[1].x == {
        "a": 1.0,
        "b": 2.0,
    }
    assert decoder.plain
    assert not decoder.changes_schema(Raw(b"1,oops,3\n", 0))  # a bad row, not a header
    assert not decoder.changes_schema(Raw(b"oops,oops,oops\n", 0))


def test_decode_batch_stops_its_fast_path_at_a_header_that_changes_the_layout():
    decoder = CsvDecoder(["a", "b", "y"])
    raws = [Raw(b"1,2,3\n", 0), Raw(b"b,a,y\n", 6), Raw(b"1,2,3\n", 12)]
    first, header, after = decoder.decode_batch(raws)
    assert (first.x, header, after.x) == ({"a": 1.0, "b": 2.0}, None, {"a": 2.0, "b": 1.0})


def test_the_schema_in_force_is_saved_and_taken_up_by_another_decoder():
    decoder = CsvDecoder(["a", "b", "y"])
    decoder.decode(Raw(b"b,a,y\n", 0))
    saved = decoder.schema()
    assert saved == {"features": ["a", "b"], "columns": ["b", "a", "y"]}
    # After a restart the header at the path may be any: the checkpoint's schema wins.
    restarted = CsvDecoder(["b", "a", "y"])
    restarted.restore_schema(saved)
    assert restarted.features == ["a", "b"] and not restarted.plain
    assert list(restarted.decode(Raw(b"2,1,5\n", 6)).x.items()) == [("a", 1.0), ("b", 2.0)]


def test_a_header_of_other_features_is_dead_lettered_with_its_rows_until_a_good_one():
    decoder = CsvDecoder(["a", "b", "y"], on_schema_change="dead-letter")
    refused = decoder.decode(Raw(b"a,c,y\n", 0))
    assert isinstance(refused, Rejected) and refused.reason == "schema_changed"
    assert not decoder.plain
    row = decoder.decode(Raw(b"1,2,3\n", 6))
    assert isinstance(row, Rejected) and row.reason == "schema_changed"
    assert decoder.decode(Raw(b"b,a,y\n", 12)) is None
    assert decoder.decode(Raw(b"1,2,3\n", 18)).x == {"a": 2.0, "b": 1.0}


def test_the_block_parser_stops_before_a_header_that_changes_the_layout():
    decoder = CsvDecoder(["a", "b", "y"])
    data = b"1,2,3\nbad,2,3\n4,5,6\nb,a,y\n7,8,9\n"
    parsed = fastpath.BlockLearner(["a", "b"], fastpath.python_kernels()).parse_lines(
        data, 0, decoder
    )
    assert parsed.stop == 3  # rows from the header on go record by record, after the switch
    assert decoder.plain  # the header was not decoded here
    assert set(parsed.judged) == {1}


# -- whole runs ---------------------------------------------------------------------------


def test_a_concatenated_csv_learns_the_oracles_weights_on_both_paths(tmp_path, monkeypatch, caplog):
    """Three sections of 5000 rows: a,b,y then b,a,y then a,b,y again, in blocks and not."""
    parts = [make_rows(5000, seed) for seed in (1, 2, 3)]
    path = tmp_path / "events.csv"
    path.write_bytes(
        section(["a", "b", "y"], *parts[0])
        + section(["b", "a", "y"], *parts[1])
        + section(["a", "b", "y"], *parts[2])
    )
    X = np.vstack([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    results = {}
    for fast in (True, False):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="streamlearn.csv_schema"):
            summary, daemon = replay(path, monkeypatch, fast, state_dir=str(tmp_path / f"s{fast}"))
        assert (summary["records_seen"], summary["records_rejected"]) == (15000, 0)
        assert_oracle(summary, X, y)
        switches = [m for m in caplog.messages if "header" in m]
        assert len(switches) == 2 and all("offset" in m for m in switches), switches
        if fast:
            assert daemon.block_learner is not None and daemon.path.name == "csv-block"
        results[fast] = (summary["weights"], summary["intercept"], summary["metrics"])
    assert results[True] == results[False]


def test_a_restart_under_a_second_header_keeps_its_mapping(tmp_path, monkeypatch):
    first, second, more = make_rows(400, 4), make_rows(400, 5), make_rows(300, 6)
    path = tmp_path / "events.csv"
    path.write_bytes(section(["a", "b", "y"], *first) + section(["b", "a", "y"], *second))
    state = str(tmp_path / "state")
    summary, _ = replay(path, monkeypatch, True, state_dir=state)
    assert summary["records_seen"] == 800
    with open(path, "ab") as handle:
        handle.write(section(["b", "a", "y"], *more, header=False))
    summary, _ = replay(path, monkeypatch, True, state_dir=state)
    assert summary["records_seen"] == 1100
    assert_oracle(
        summary,
        np.vstack([first[0], second[0], more[0]]),
        np.concatenate([first[1], second[1], more[1]]),
    )


def test_a_header_of_other_features_stops_the_replay_with_one_line(tmp_path):
    X, y = make_rows(100, 7)
    path = tmp_path / "events.csv"
    head = section(["a", "b", "y"], X, y)
    path.write_bytes(head + section(["a", "c", "y"], X, y))
    result = cli("replay", str(path), "--no-progress", check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert "a,b,y" in errors[0] and "a,c,y" in errors[0]
    assert f"offset {len(head)}" in errors[0]
    assert "--on-schema-change" in errors[0]


@pytest.mark.parametrize("fast", [True, False], ids=["blocks", "records"])
def test_dead_letter_mode_counts_each_refused_row_once(tmp_path, monkeypatch, fast):
    good, bad, back = make_rows(3000, 8), make_rows(500, 9), make_rows(3000, 10)
    path = tmp_path / "events.csv"
    path.write_bytes(
        section(["a", "b", "y"], *good)
        + section(["a", "c", "y"], *bad)
        + section(["b", "a", "y"], *back)
    )
    dead = tmp_path / "dead.jsonl"
    summary, _ = replay(
        path, monkeypatch, fast, on_schema_change="dead-letter", dead_letter=str(dead)
    )
    assert summary["records_rejected"] == 501  # the refused header and its 500 rows
    assert summary["rejected_by_reason"] == {"schema_changed": 501}
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(letters) == 501
    assert {letter["reason"] for letter in letters} == {"schema_changed"}
    assert letters[0]["raw"] == "a,c,y\n"
    assert len({letter["position"]["offset"] for letter in letters}) == 501
    assert_oracle(summary, np.vstack([good[0], back[0]]), np.concatenate([good[1], back[1]]))


def test_dead_letter_mode_goes_on_refusing_after_a_restart_under_the_refused_header(
    tmp_path, monkeypatch
):
    good, bad, more, back = (make_rows(200, s) for s in (11, 12, 13, 14))
    path = tmp_path / "events.csv"
    path.write_bytes(section(["a", "b", "y"], *good) + section(["a", "c", "y"], *bad))
    dead, state = tmp_path / "dead.jsonl", str(tmp_path / "state")
    options = {"on_schema_change": "dead-letter", "dead_letter": str(dead), "state_dir": state}
    summary, _ = replay(path, monkeypatch, True, **options)
    assert summary["rejected_by_reason"] == {"schema_changed": 201}
    with open(path, "ab") as handle:
        handle.write(section(["a", "c", "y"], *more, header=False))
        handle.write(section(["a", "b", "y"], *back))
    summary, _ = replay(path, monkeypatch, True, **options)
    assert summary["rejected_by_reason"] == {"schema_changed": 401}
    assert len(dead.read_text().splitlines()) == 401
    assert_oracle(summary, np.vstack([good[0], back[0]]), np.concatenate([good[1], back[1]]))


def test_help_documents_on_schema_change():
    text = " ".join(cli("run", "--help").stdout.split())
    assert "--on-schema-change [stop|dead-letter]" in text
    assert "schema_changed" in text


# -- a followed run, real files, real rotation -------------------------------------------


def _follow(path: Path, state: Path) -> subprocess.Popen[str]:
    return follow(path, state, "--lr", str(LR), rotate_wait=0.3)


def _stop(proc: subprocess.Popen[str]) -> str:
    stderr = sigterm(proc)
    assert proc.returncode == 0, stderr
    return stderr


@pytest.mark.slow
def test_a_followed_run_maps_a_rotated_files_permuted_header_by_name(tmp_path):
    """``a,b,y``, then a rotation to ``b,a,y``; a restart in the middle of the second file."""
    first, second, more = make_rows(300, 21), make_rows(300, 22), make_rows(200, 23)
    path, state = tmp_path / "events.csv", tmp_path / "state"
    path.write_bytes(section(["a", "b", "y"], *first))
    proc = _follow(path, state)
    try:
        assert wait_for_seen(state, 300) == 300
        os.rename(path, path.with_name("events.csv.1"))
        path.write_bytes(section(["b", "a", "y"], *second))
        assert wait_for_seen(state, 600) == 600
    finally:
        _stop(proc)
    with open(path, "ab") as handle:
        handle.write(section(["b", "a", "y"], *more, header=False))
    proc = _follow(path, state)
    try:
        assert wait_for_seen(state, 800) == 800
    finally:
        stderr = _stop(proc)
    summary = inspect_json(state)
    assert summary["records_rejected"] == 0, stderr
    assert_oracle(
        summary,
        np.vstack([first[0], second[0], more[0]]),
        np.concatenate([first[1], second[1], more[1]]),
    )


def test_a_followed_run_stops_at_a_rotated_file_of_other_features(tmp_path):
    X, y = make_rows(100, 24)
    path, state = tmp_path / "events.csv", tmp_path / "state"
    path.write_bytes(section(["a", "b", "y"], X, y))
    proc = _follow(path, state)
    try:
        assert wait_for_seen(state, 100) == 100
        os.rename(path, path.with_name("events.csv.1"))
        path.write_bytes(section(["a", "c", "y"], X, y))
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "a,c,y" in errors[0] and "offset 0" in errors[0], stderr
    assert inspect_json(state)["records_seen"] == 100


def test_a_row_of_names_sharing_no_feature_is_a_bad_row_not_a_header():
    decoder = CsvDecoder(["x0", "x1", "y"])
    assert not decoder.changes_schema(Raw(b"x,y,z\n", 0))
    assert decoder.decode(Raw(b"x,y,z\n", 0)).reason == "non_numeric"
    assert decoder.decode(Raw(b"x,y,z,w\n", 6)).reason == "field_count"
    assert decoder.plain
