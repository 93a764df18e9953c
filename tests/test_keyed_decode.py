"""A record's key (``--key-by``): read by the CSV and JSON decoders, never a feature; bad
keys are dead letters with a reason; the keyed options' usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamhelpers import cli
from streamlearn.json_decoder import JsonDecoder
from streamlearn.keys.fields import KeyField
from streamlearn.records import REJECT_REASONS, CsvDecoder, Record, Rejected
from streamlearn.sources.base import Raw


def _raw(text: str, key: bytes | None = None) -> Raw:
    return Raw(text.encode(), offset=0, key=key)


def test_reasons_are_declared() -> None:
    for reason in ("missing_key", "bad_key", "key_too_long", "too_many_keys"):
        assert reason in REJECT_REASONS


def test_csv_key_column_is_never_a_feature() -> None:
    decoder = CsvDecoder(["a", "store", "b", "y"], keys=KeyField("store"))
    assert decoder.features == ["a", "b"]
    assert not decoder.plain  # the key column: no compiled block path
    record = decoder.decode(_raw("1,s-7,2,3\n"))
    assert isinstance(record, Record)
    assert (record.x, record.y, record.key) == ({"a": 1.0, "b": 2.0}, 3.0, "s-7")
    [batch] = decoder.decode_batch([_raw("4, s-8 ,5,\n")])
    assert isinstance(batch, Record) and batch.key == "s-8" and batch.y is None
    missing = decoder.decode(_raw("1,,2,3\n"))
    assert isinstance(missing, Rejected) and missing.reason == "missing_key"
    # a header row of the same columns in another order: the key column follows by name
    assert decoder.decode(_raw("store,a,b,y\n")) is None
    moved = decoder.decode(_raw("s-9,1,2,3\n"))
    assert isinstance(moved, Record) and moved.key == "s-9" and moved.x == {"a": 1.0, "b": 2.0}


def test_csv_key_column_must_exist_and_not_be_a_feature() -> None:
    with pytest.raises(ValueError, match="key column 'shop'"):
        CsvDecoder(["a", "y"], keys=KeyField("shop"))
    with pytest.raises(ValueError, match="cannot be a feature"):
        CsvDecoder(["a", "store", "y"], features=["a", "store"], keys=KeyField("store"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"s1"', "s1"),
        ("7", "7"),
        ("2.5", "2.5"),
        ('"  s2 "', "s2"),
    ],
)
def test_json_keys_as_text(value: str, expected: str) -> None:
    decoder = JsonDecoder(keys=KeyField("store"))
    record = decoder.decode(_raw(f'{{"store": {value}, "a": 1, "y": 2}}'))
    assert isinstance(record, Record)
    assert record.key == expected
    assert record.x == {"a": 1.0}  # the key is never a feature


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("null", "missing_key"),
        ('""', "missing_key"),
        ('"   "', "missing_key"),
        ('{"a": 1}', "bad_key"),
        ("[1, 2]", "bad_key"),
        ("true", "bad_key"),
        ('"' + "k" * 300 + '"', "key_too_long"),
    ],
)
def test_json_bad_keys_are_dead_letters(value: str, reason: str) -> None:
    decoder = JsonDecoder(keys=KeyField("store"))
    item = decoder.decode(_raw(f'{{"store": {value}, "a": 1, "y": 2}}'))
    assert isinstance(item, Rejected)
    assert item.reason == reason
    assert "store" in item.detail


def test_json_missing_key_and_default_key() -> None:
    assert JsonDecoder(keys=KeyField("store")).decode(_raw('{"a": 1, "y": 2}')).reason == (  # type: ignore[union-attr]
        "missing_key"
    )
    record = JsonDecoder(keys=KeyField("store", default="other")).decode(_raw('{"a": 1, "y": 2}'))
    assert isinstance(record, Record) and record.key == "other"
    # a bad key is not a missing one: the default does not hide it
    bad = JsonDecoder(keys=KeyField("store", default="other")).decode(
        _raw('{"store": [1], "a": 1, "y": 2}')
    )
    assert isinstance(bad, Rejected) and bad.reason == "bad_key"
    with pytest.raises(ValueError, match="--default-key"):
        KeyField("store", default="  ")


def test_json_envelope_and_late_label_keep_their_shape() -> None:
    decoder = JsonDecoder(keys=KeyField("store"))
    record = decoder.decode(_raw('{"store": "s", "x": {"a": 1}, "y": 2}'))
    assert isinstance(record, Record) and record.key == "s" and record.x == {"a": 1.0}
    label = decoder.decode(_raw('{"id": "r1", "store": "s", "y": 2}'))
    assert type(label).__name__ == "Label"


def test_message_key() -> None:
    decoder = JsonDecoder(keys=KeyField(":key"))
    record = decoder.decode(_raw('{"a": 1, "y": 2}', key=b"sensor-3"))
    assert isinstance(record, Record) and record.key == "sensor-3"
    for key, reason in ((None, "missing_key"), (b"", "missing_key"), (b"\xff", "bad_key")):
        item = decoder.decode(_raw('{"a": 1, "y": 2}', key=key))
        assert isinstance(item, Rejected) and item.reason == reason
    csv = CsvDecoder(["a", "y"], keys=KeyField(":key"))
    [row] = csv.decode_batch([_raw("1,2\n", key=b"k")])
    assert isinstance(row, Record) and row.key == "k" and row.x == {"a": 1.0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--key-by", ":key"), "Kafka message key"),
        (("--default-key", "x"), "--default-key goes with --key-by"),
        (("--key-by", "y"), "cannot be the target"),
        (("--key-by", "store", "--features", "a,store"), "never a feature"),
        (("--key-by", "store", "--key-fallback", "warm"), "give --warm-start"),
        (("--key-by", "store", "--pseudo-label", "--threaded"), "--threaded with --key-by"),
        (("--key-by", "store", "--no-learn"), "not supported yet"),
        (("--key-by", "store", "--drift-detector", "ddm"), "needs a classifier"),
        (("--key-by", "store", "--max-live-keys", "0"), "--max-live-keys"),
    ],
)
def test_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    data = tmp_path / "d.csv"
    data.write_text("store,a,y\ns,1,2\n")
    result = cli("replay", str(data), *args, check=False)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_keys_section() -> None:
    out = cli("replay", "--help").stdout
    assert "Keys (one model per key):" in out
    for option in ("--key-by", "--default-key", "--max-live-keys", "--key-fallback"):
        assert option in out
