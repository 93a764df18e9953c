"""The C extension ``streamlearn.fast._kernels``: the numbers it was built with, its argument
checks, and the parser on arbitrary bytes against its Python specification.

The kernels' results are compared with the Python functions, the numpy oracle and River
in test_fastpath, test_river_path and test_adwin; here is what those cannot show: that
the constants compiled into the C agree with the Python modules, that a wrong array is
refused before any loop runs (a C loop would write past it), and that no byte string,
however mangled, makes the compiled parser differ from ``spec.parse_lines``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlearn import learner
from streamlearn.drift import adwin
from streamlearn.fast import spec

try:
    from streamlearn.fast import _kernels
except ImportError:  # a source tree never installed; pip builds it, so never under CI
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("streamlearn.fast._kernels is not built", allow_module_level=True)


def test_the_compiled_constants_are_the_python_ones():
    for name in ("LABELED", "UNLABELED", "DOUBT", "REJECTED", "NOTHING"):
        assert getattr(_kernels, name) == getattr(spec, name), name
    assert (_kernels.INTERCEPT, _kernels.ABS_SUM) == (spec.INTERCEPT, spec.ABS_SUM)
    assert _kernels.N_STATE == spec.ABS_SUM + 1
    assert _kernels.STOPPED == spec.STOPPED
    assert _kernels.N_COUNTERS == spec.STOPPED + 1
    assert (_kernels.N_STATE, _kernels.N_COUNTERS) == (spec.N_STATE, spec.N_COUNTERS)
    assert _kernels.DIVERGED == learner.DIVERGED
    assert (_kernels.HEADER, _kernels.MAX_ROWS) == (spec.HEADER, spec.MAX_ROWS)
    assert _kernels.SEEN_TOTAL == spec.SEEN_TOTAL


def parse_arrays(lines: int, n_fields: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.full((lines, n_fields), -1.0),
        np.full(lines, -1, dtype=np.int8),
        np.full(lines + 1, -1, dtype=np.int64),
    )


def test_parse_refuses_wrong_arrays_before_writing_anything():
    data = b"1,2\n3,4\n"
    values, status, starts = parse_arrays(2, 2)
    with pytest.raises(TypeError, match="values"):
        _kernels.parse_lines(data, 2, values.astype(np.float32), status, starts)
    with pytest.raises(TypeError, match="status"):
        _kernels.parse_lines(data, 2, values, status.astype(np.int64), starts)
    with pytest.raises(ValueError, match="contiguous"):  # numpy's own refusal
        _kernels.parse_lines(data, 2, np.full((2, 4), -1.0)[:, ::2], status, starts)
    with pytest.raises(ValueError, match="starts"):
        _kernels.parse_lines(data, 2, values, status, starts[:2])
    with pytest.raises(ValueError):
        _kernels.parse_lines(data, 3, values, status, starts)  # a row has room for 2 numbers
    with pytest.raises(ValueError, match="read-only"):
        _kernels.parse_lines(data, 2, values, status, np.frombuffer(b"\0" * 24, np.int64))
    assert (values == -1.0).all() and (status == -1).all() and (starts == -1).all()
    assert _kernels.parse_lines(data, 2, values, status, starts) == 2
    assert values.tolist() == [[1.0, 2.0], [3.0, 4.0]] and starts.tolist() == [0, 4, 8]


def learn_args(rows: int = 4, features: int = 2) -> list:
    values = np.ones((rows, features + 1))
    state = np.zeros(10)
    counters = np.array([0, 0, 0, 1, 100, 0, 0], dtype=np.int64)
    return [
        values,
        np.zeros(rows, dtype=np.int8),
        0,
        rows,
        np.zeros(features),
        0.1,
        2.0,
        state,
        counters,
        np.zeros(8),
        np.zeros(8),
        np.zeros(rows),
        np.zeros((rows, 3)),
    ]


@pytest.mark.parametrize(
    "change",
    [
        {2: -1},  # start
        {3: 5},  # stop past the rows
        {4: np.zeros(3)},  # weights: no room for the target column
        {7: np.zeros(9)},  # state too short
        {8: np.array([0, 0, 0, 0, 100, 0, 0], dtype=np.int64)},  # curve stride 0
        {8: np.array([0, 8, 0, 1, 100, 0, 0], dtype=np.int64)},  # ring slot past the ring
        {10: np.zeros(7)},  # the two rings differ
        {11: np.zeros(3)},  # predictions: no room
        {12: np.zeros((3, 3))},  # curve: room for 3 of 4 rows
    ],
)
def test_learn_refuses_arrays_or_counters_out_of_range(change):
    args = learn_args()
    for index, value in change.items():
        args[index] = value
    weights_before = args[4].copy()
    with pytest.raises(ValueError, match="out of range"):
        _kernels.learn_rows(*args)
    assert (args[4] == weights_before).all()


def test_learn_refuses_a_wrong_dtype():
    args = learn_args()
    args[8] = args[8].astype(np.int32)
    with pytest.raises(TypeError, match="counters"):
        _kernels.learn_rows(*args)
    args = learn_args()
    assert _kernels.learn_rows(*args) == 4
    assert args[8][0] == 4  # four records learned


def test_adwin_refuses_a_buffer_without_room_for_its_rows():
    detector = adwin.ADWIN(compiled=True)
    buf = detector._buf
    with pytest.raises(ValueError, match="out of bounds"):
        _kernels.feed_values(buf[:100].copy(), np.zeros(3), 0, 3)
    with pytest.raises(ValueError, match="out of bounds"):
        _kernels.feed_values(buf.copy(), np.zeros(3), 0, 4)
    with pytest.raises(TypeError, match="bytes-like"):
        _kernels.feed_values(buf.copy(), [1.0, 2.0], 0, 2)
    with pytest.raises(TypeError, match="values"):
        _kernels.feed_values(buf.copy(), np.zeros(2, dtype=np.float32), 0, 2)


# Bytes a CSV parser can trip on, mixed with well-formed numbers.
PIECES = st.sampled_from(
    [
        b"0",
        b"1",
        b"9",
        b"12345678901234567",
        b"123456789012345678",
        b"-",
        b"+",
        b".",
        b"e",
        b"E",
        b"e-",
        b"e+",
        b"1e22",
        b"1e23",
        b"5e-324",
        b"0.000001",
        b"00",
        b",",
        b",,",
        b"\n",
        b"\r\n",
        b"\r",
        b" ",
        b'"',
        b"nan",
        b"inf",
        b"\x00",
        b"\xff",
        b"9" * 25,
        b"e99999",
        b"1e150",
        b"e149",
        b"1.5",
        b"-0",
        b".5",
        b"5.",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES, max_size=60), st.integers(min_value=1, max_value=4))
def test_the_compiled_parser_reads_any_bytes_as_its_python_specification(pieces, n_fields):
    data = b"".join(pieces)
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1) if data else 0
    out_c = parse_arrays(lines, n_fields)
    out_py = parse_arrays(lines, n_fields)
    rows_c = _kernels.parse_lines(data, n_fields, *out_c)
    rows_py = spec.parse_lines(data, n_fields, *out_py)
    assert rows_c == rows_py
    status_c, status_py = out_c[1], out_py[1]
    assert status_c.tolist() == status_py.tolist()
    assert out_c[2].tolist() == out_py[2].tolist()
    # Numbers are defined for the rows read as numbers (a DOUBT row's are scratch).
    read = np.isin(status_py, (spec.LABELED, spec.UNLABELED))
    assert [float(v).hex() for v in out_c[0][read].ravel()] == [
        float(v).hex() for v in out_py[0][read].ravel()
    ]


# Numbers past Clinger's fast path: where a multiplication would round twice.
HARD = [
    "9007199254740993",
    "9007199254740992.5",
    "2.2250738585072011e-308",
    "2.2250738585072012e-308",
    "1e23",
    "8.98846567431158e307",
    "5e-324",
    "2.4703282292062328e-324",
    "2.4703282292062327e-324",
    "1.7976931348623157e308",
    "1.7976931348623158e308",
    "0.30000000000000004",
    "1.00000000000000011102230246251565404",
    "123456789012345678901234567890e-10",
    "1e300",
    "1e-320",
    "1e-999",
    "0e99999",
    "4.9406564584124654e-324",
    "00000000000000000000001.5",
    "1.e5",
    ".5e-3",
    "1E+022",
]


@pytest.mark.parametrize("parse", [_kernels.parse_lines, spec.parse_lines], ids=["c", "python"])
def test_long_numbers_are_read_as_float_reads_them(parse):
    rng = np.random.default_rng(8)
    bits = rng.integers(0, 2**64, size=20_000, dtype=np.uint64)
    doubles = bits.view(np.float64)
    texts = [repr(float(x)) for x in doubles[np.isfinite(doubles)]]
    texts += [t + "7" if "e" not in t else t.replace("e", "7e") for t in texts[:2000]]
    texts += HARD + ["-" + t for t in HARD]
    data = "".join(f"{t},1\n" for t in texts).encode()
    values, status, starts = parse_arrays(len(texts), 2)
    assert parse(data, 2, values, status, starts) == len(texts)
    # Beyond learner.DIVERGED a number is the decoder's (as a target it is out of range).
    inside = np.array([abs(float(t)) < learner.DIVERGED for t in texts])
    assert 0.6 < inside.mean() < 0.9  # both kinds, a good many of each
    assert (status[inside] == spec.LABELED).all()
    assert (status[~inside] == spec.DOUBT).all()
    read = [float(v).hex() for v in values[inside, 0]]
    assert read == [float(t).hex() for t, keep in zip(texts, inside, strict=True) if keep]


@pytest.mark.parametrize("parse", [_kernels.parse_lines, spec.parse_lines], ids=["c", "python"])
def test_overflow_and_very_long_numbers_are_left_to_the_decoder(parse):
    texts = ["1e999", "-1e400", "1" * 70, "1e", "1e+", ".", "-", "+.e1", "1e150", "-1e150",
             "1e300", "1.7976931348623157e308", "-1e200"]  # fmt: skip
    data = "".join(f"{t},1\n" for t in texts).encode()
    values, status, starts = parse_arrays(len(texts), 2)
    parse(data, 2, values, status, starts)
    assert status.tolist() == [spec.DOUBT] * len(texts)
