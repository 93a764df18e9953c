"""Input details every path reads alike: a byte-order mark, a target-only CSV, numbers.

Each case runs through ``replay`` (the per-record path, and the compiled block path where
the layout allows it) and checks what is learned and what is dead-lettered.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamhelpers import cli
from streamlearn.json_decoder import JsonDecoder
from streamlearn.records import CsvDecoder
from streamlearn.sources.base import Raw
from streamlearn.sources.file import FileSource

BOM = b"\xef\xbb\xbf"
#: sgd learns plain CSV a block at a time (compiled); River's model record by record.
MODELS = ["sgd", "LinearRegression()"]


def replay(path: Path, *args: str) -> tuple[dict, list[dict]]:
    """Replay ``path``; its summary and its dead letters."""
    dead = path.with_name("dead.jsonl")
    result = cli("replay", str(path), "--dead-letter", str(dead), "--inspect-json", *args)
    letters = [json.loads(line) for line in dead.read_text().splitlines()] if dead.exists() else []
    return json.loads(result.stdout), letters


def csv_rows(count: int) -> bytes:
    return b"".join(b"%d,%d,%d\n" % (i % 7, i % 5, (i % 7) + 2 * (i % 5)) for i in range(count))


# -- a UTF-8 byte-order mark ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_a_bom_before_the_csv_header_is_not_a_record(tmp_path, model):
    path = tmp_path / "bom.csv"
    path.write_bytes(BOM + b"a,b,y\n" + csv_rows(20_000))
    summary, letters = replay(path, "--model", model)
    assert letters == []
    assert (summary["records_seen"], summary["records_learned"]) == (20_000, 20_000)


def test_a_bom_before_the_csv_header_with_an_id_column(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(
        BOM + b"id,a,y\n" + b"".join(b"r%d,%d,%d\n" % (i, i % 3, i % 3) for i in range(50))
    )
    summary, letters = replay(path, "--id-column", "id")
    assert letters == []
    assert summary["records_learned"] == 50


def test_a_bom_before_a_json_lines_file_is_not_part_of_the_first_record(tmp_path):
    path = tmp_path / "bom.jsonl"
    lines = b"".join(b'{"a": %d, "y": %d}\n' % (i % 3, i % 3) for i in range(30))
    path.write_bytes(BOM + lines)
    summary, letters = replay(path)
    assert letters == []
    assert summary["records_learned"] == 30


def test_a_bom_does_not_hide_json_lines_from_format_detection(tmp_path):
    path = tmp_path / "events.log"  # no extension that names the format
    path.write_bytes(BOM + b'{"a": 1, "y": 2}\n{"a": 2, "y": 4}\n')
    summary, letters = replay(path)
    assert letters == []
    assert summary["records_learned"] == 2


def test_the_source_hands_out_the_first_line_without_the_bom(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(BOM + b"a,y\n1,2\n")
    source = FileSource(path)
    assert [(raw.value, raw.offset) for raw in source.next_batch(10)] == [
        (b"a,y\n", 3),
        (b"1,2\n", 7),
    ]
    source.close()
    block = FileSource(path).next_block(10)
    assert block is not None and (block.data, block.offset) == (b"a,y\n1,2\n", 3)


def test_a_bom_only_at_the_start_of_the_file_is_taken_away(tmp_path):
    """A BOM elsewhere is data: the decoder judges that line."""
    path = tmp_path / "bom.csv"
    path.write_bytes(b"a,y\n" + BOM + b"1,2\n")
    source = FileSource(path)
    assert [raw.value for raw in source.next_batch(10)] == [b"a,y\n", BOM + b"1,2\n"]


def test_json_decoder_and_bom_line(tmp_path):
    """Without the source's help (a message), a BOM makes the value bad JSON, as before."""
    assert JsonDecoder().decode(Raw(BOM + b'{"a": 1, "y": 2}', 0)).reason == "bad_json"


# -- a CSV whose only column is the target ----------------------------------------------------


def test_a_target_only_csv_does_not_dead_letter_its_header(tmp_path):
    path = tmp_path / "y.csv"
    path.write_bytes(b"y\n" + b"".join(b"%d\n" % (i % 4) for i in range(10)))
    summary, letters = replay(path)
    assert letters == []
    assert summary["records_learned"] == 10


def test_the_decoder_skips_the_header_of_a_target_only_csv():
    decoder = CsvDecoder(["y"])
    assert decoder.decode(Raw(b"y\n", 0)) is None
    assert decoder.decode_batch([Raw(b"y\n", 0)]) == [None]
    assert decoder.decode(Raw(b"3\n", 2)).y == 3.0
    labels = CsvDecoder(["id", "y"], id_column="id")  # late labels only
    assert labels.decode(Raw(b"id,y\n", 0)) is None
    assert labels.decode(Raw(b"r1,3\n", 5)).y == 3.0


# -- numbers: what the compiled CSV parser reads, on every path ------------------------------

#: Numbers Python's float() takes but the CSV parser does not: digit-group underscores,
#: non-ASCII digits (Arabic-Indic, fullwidth), a non-ASCII space around the number.
ODD_NUMBERS = ["1_000", "\u0661", "\uff11", "\u0663.5", "1\u00a0", "2_0.5e1"]


def odd_rows(layout: str) -> list[bytes]:
    rows = []
    for number in ODD_NUMBERS:
        cells = number.encode()
        if layout == "id":
            rows += [b"r1," + cells + b",1,2\n", b"r2,1,2," + cells + b"\n"]
        else:
            rows += [cells + b",1,2\n", b"1,2," + cells + b"\n"]
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_odd_numbers_are_non_numeric_on_every_csv_path(tmp_path, model):
    path = tmp_path / "odd.csv"
    odd = odd_rows("plain")
    # Far into the file too: past the first rows, the compiled path reads blocks.
    path.write_bytes(b"a,b,y\n" + b"".join(odd) + csv_rows(20_000) + b"".join(odd))
    summary, letters = replay(path, "--model", model)
    assert [(letter["reason"], letter["raw"].encode()) for letter in letters] == [
        ("non_numeric", row) for row in odd + odd
    ]
    assert summary["records_learned"] == 20_000


def test_odd_numbers_are_non_numeric_with_an_id_column(tmp_path):
    path = tmp_path / "odd.csv"
    odd = odd_rows("id")
    path.write_bytes(b"id,a,b,y\n" + b"".join(odd) + b"r3,1,2,3\n")
    summary, letters = replay(path, "--id-column", "id")
    assert [(letter["reason"], letter["raw"].encode()) for letter in letters] == [
        ("non_numeric", row) for row in odd
    ]
    assert summary["records_learned"] == 1


def test_the_csv_decoder_rejects_odd_numbers_one_line_or_a_batch_at_a_time():
    decoder = CsvDecoder(["a", "b", "y"])
    raws = [Raw(row, 0) for row in odd_rows("plain")]
    assert [item.reason for item in decoder.decode_batch(raws)] == ["non_numeric"] * len(raws)
    assert [decoder.decode(raw).reason for raw in raws] == ["non_numeric"] * len(raws)
    labels = CsvDecoder(["id", "a", "y"], id_column="id")  # a late label's target too
    assert labels.decode(Raw(b"r1,,1_0\n", 0)).reason == "non_numeric"
    assert labels.decode(Raw(b"r1,,10\n", 0)).y == 10.0
    assert decoder.decode(Raw(b" 1 ,+2.5,.5\n", 0)).x == {"a": 1.0, "b": 2.5}  # as before


def test_json_numbers_in_strings_and_non_ascii_digits_are_refused(tmp_path):
    path = tmp_path / "odd.jsonl"
    good = b"".join(b'{"a": %d, "b": 1, "y": %d}\n' % (i % 3, i % 3) for i in range(20_000))
    odd = [
        b'{"a": "1_000", "b": 1, "y": 1}\n',
        b'{"a": "1", "b": 1, "y": 1}\n',
        b'{"a": 1, "b": 1, "y": "1_0"}\n',
        '{"a": \u0661, "b": 1, "y": 1}\n'.encode(),
        b'{"a": 1_000, "b": 1, "y": 1}\n',
    ]
    path.write_bytes(b"".join(odd) + good + b"".join(odd))
    summary, letters = replay(path, "--features", "a,b")
    reasons = ["non_numeric", "non_numeric", "non_numeric", "bad_json", "bad_json"]
    assert [(letter["reason"], letter["raw"].encode()) for letter in letters] == list(
        zip(reasons * 2, odd + odd, strict=True)
    )
    assert summary["records_learned"] == 20_000
