"""Blocks of flat JSON values learned by ``sgd``: the compiled path for JSON, exact.

A Kafka fetch (or a JSON Lines block of a file) holds thousands of messages written by one
producer: flat objects with the same keys in the same order, numbers only, one style of
separators (``{"x0": 0.5, "y": 1.2}`` as ``json.dumps`` writes it, or ``{"x0":0.5,"y":1.2}``).
Such a block is checked and turned into CSV lines a whole block at a time, with byte string
methods and numpy (no Python work per message), and the compiled CSV parser of
``streamlearn.fast.block`` reads the numbers; the kernel then learns the rows as it learns CSV.

Every message whose line is not *proved* to read as ``JsonDecoder`` reads it is marked
``DOUBT`` and judged by ``JsonDecoder.decode`` itself. A line is taken as is only when:

1. deleting the bytes of numbers (``0-9 . e E + -``) leaves exactly the line of the layout
   (``{"k0": , "k1": , ...}``, key bytes minus those characters): structure, separators and
   nothing else (no ``true``, ``null``, strings, escapes, nesting, extra keys, blanks);
2. the keys, between their quotes, are byte for byte the layout's, and around each number
   stand exactly the separators of the layout's style: so each number is one run of number
   bytes, and in the block turned into CSV (keys, quotes, braces, colons, blanks deleted) each
   line is the numbers of the message in its key order, separated by commas;
3. each number is a JSON number (no ``+`` in front, no leading zeros, digits on both sides of
   ``.``) that ``spec.parse_lines`` reads (any within ±``metrics.DIVERGED`` that fits in 63 bytes:
   the parser rounds correctly, as ``orjson`` does, so both give the same double), and not
   ``-0`` (``orjson`` reads that integer as ``0``, the parser as ``-0.0``);
4. the target (the one key of the layout that is not a feature) is a number: unlabeled rows
   (``null``, a missing target) are judged by the decoder, which also gives their id.

Which keys are features: the same rule as ``JsonDecoder``. With ``--features`` the layout is
those names and the target in any key order (the decoder builds ``x`` in the ``--features``
order); without, a message's features are its keys but the target, in message order, which is
the order ``SGDRegressor.predict_one`` sums them in: the layout is then the key order of the
messages (taken from the block's first message that is such a flat object), and a judged
record whose features are other names or in another order stops the block there (the run
loop takes the rest record by record, as after a diverged prediction). The model must hold a
weight for every feature of the layout (``sgd`` has, after its first records), else the block
goes record by record.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import orjson

from streamlearn.fast.block import (
    DOUBT,
    LABELED,
    NOTHING,
    REJECTED,
    UNLABELED,
    BlockLearner,
    Kernels,
    LinearModel,
    LineDecoder,
    Parsed,
    Saved,
    locator,
)
from streamlearn.interfaces import Block
from streamlearn.json_decoder import JsonDecoder
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor
from streamlearn.records import Decoded, Label, Record, Rejected
from streamlearn.sources.base import Raw

#: The bytes numbers are made of: deleted to see the structure of a line.
_NUMBER_BYTES = b"0123456789.eE+-"
#: Deleted to turn a checked line into CSV (key bytes are overwritten with quotes first).
_STRUCTURE_BYTES = b'{}": '
#: Byte classes for the number grammar check: separator (``,`` or newline), ``0``, ``1-9``,
#: ``.``, ``-``, ``+``, ``e``/``E``, anything else.
_SEP, _ZERO, _DIGIT, _POINT, _MINUS, _PLUS, _EXP, _OTHER = range(8)


def _class_table() -> bytes:
    table = bytearray([_OTHER] * 256)
    for byte in b",\n":
        table[byte] = _SEP
    table[ord("0")] = _ZERO
    for byte in b"123456789":
        table[byte] = _DIGIT
    table[ord(".")] = _POINT
    table[ord("-")] = _MINUS
    table[ord("+")] = _PLUS
    table[ord("e")] = table[ord("E")] = _EXP
    return bytes(table)


def _bad_trigrams() -> np.ndarray:
    """``bad[before << 6 | byte << 3 | after]``: the byte breaks JSON's number grammar there.

    Only what ``spec.parse_lines`` would accept although ``orjson`` would not (or would
    read otherwise) must be caught; the rest is caught twice, which does no harm.
    """
    bad = np.zeros(512, dtype=bool)
    digits = (_ZERO, _DIGIT)
    for before in range(8):
        for byte in range(8):
            for after in range(8):
                wrong = (
                    byte == _OTHER
                    or (byte == _SEP and before == _SEP)  # an empty number
                    or (byte == _PLUS and before != _EXP)  # "+1", "1+2"
                    or (byte == _MINUS and before not in (_SEP, _EXP))
                    # "01", "-01": leading zeros; "-0" alone. Exponents such as "e-05" and
                    # "e-0" look the same here: doubted too, which costs only time.
                    or (byte == _ZERO and before in (_SEP, _MINUS) and after in digits)
                    or (byte == _ZERO and before == _MINUS and after == _SEP)
                    or (byte == _POINT and (before not in digits or after not in digits))
                    or (byte == _EXP and before not in digits)
                    or (byte == _EXP and after not in (_ZERO, _DIGIT, _MINUS, _PLUS))
                )
                bad[before << 6 | byte << 3 | after] = wrong
    return bad


_CLASSES = _class_table()
_BAD = _bad_trigrams()


def _plain_key(key: str) -> bytes | None:
    """The key's UTF-8 bytes when JSON writes them as they are between quotes, else None."""
    if not key or any(ord(c) < 0x20 for c in key):
        return None
    encoded = json.dumps(key, ensure_ascii=False)[1:-1]
    return key.encode() if encoded == key else None


@dataclass(frozen=True)
class Layout:
    """The keys of a block's messages, in message order, and where the features are."""

    keys: tuple[str, ...]  # every key of a message, in message order
    features: tuple[str, ...]  # the record's features, in the order of its ``x``
    order: tuple[int, ...]  # column (key index) of each feature, then of the target
    key_bytes: tuple[bytes, ...]

    @classmethod
    def of(cls, obj: object, decoder: JsonDecoder) -> Layout | None:
        """The layout of a decoded message, when blocks of its like can be read exactly."""
        if not isinstance(obj, dict) or not obj:
            return None
        keys = tuple(obj)
        target, id_field = decoder.target, decoder.id_field
        if target not in keys or id_field in keys or "x" in keys:
            return None
        for value in obj.values():
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
        names = [key for key in keys if key != target]
        if decoder.features is not None:
            if sorted(decoder.features) != sorted(names):
                return None  # extra or missing keys: the decoder judges such messages
            names = list(decoder.features)
        encoded = [_plain_key(key) for key in keys]
        if not names or any(key is None for key in encoded):
            return None
        order = (*(keys.index(name) for name in names), keys.index(target))
        return cls(keys, tuple(names), order, tuple(e for e in encoded if e is not None))

    def skeleton(self, spaced: bool) -> bytes:
        """A line of this layout with its number bytes deleted (``json.dumps``'s style or not)."""
        colon, comma = (b": ", b", ") if spaced else (b":", b",")
        line = b"{" + comma.join(b'"' + key + b'"' + colon + b"0" for key in self.key_bytes)
        return (line + b"}\n").translate(None, _NUMBER_BYTES)


@dataclass
class JsonParsed(Parsed):
    """A parsed block of JSON values: ``Parsed`` plus its features (``stop``: other ones)."""

    features: list[str] = field(default_factory=list)

    def record_id(self, row: int) -> str | None:
        """The id of an unlabeled row (the decoder judged it: every unlabeled row is judged)."""
        item = self.judged.get(row)
        return item.id if isinstance(item, Record) else None


class JsonBlockLearner:
    """``BlockLearner`` for blocks of JSON values: parses them, then lets one learn them.

    ``parse`` returns None when no layout fits the block (the run loop then takes it record
    by record); ``learn``, ``save``, ``restore`` and ``yhat`` are those of the
    ``BlockLearner`` of the last parsed block's features.
    """

    def __init__(self, decoder: JsonDecoder, learner: Learner, kernels: Kernels | None) -> None:
        self.decoder = decoder
        self.learner = learner
        self._kernels = kernels
        self._layout: Layout | None = None
        self._learners: dict[tuple[str, ...], BlockLearner] = {}
        self.inner: BlockLearner | None = None

    @property
    def features(self) -> list[str]:
        return self.inner.features if self.inner is not None else []

    @property
    def yhat(self) -> np.ndarray:
        assert self.inner is not None
        return self.inner.yhat

    def learn(
        self, learner: Learner, model: LinearModel, parsed: JsonParsed, start: int, stop: int
    ) -> int:
        assert self.inner is not None
        return self.inner.learn(learner, model, parsed, start, min(stop, parsed.stop))

    def save(self, learner: Learner, model: LinearModel) -> Saved:
        assert self.inner is not None
        return self.inner.save(learner, model)

    def restore(self, learner: Learner, model: LinearModel, saved: Saved) -> None:
        assert self.inner is not None
        self.inner.restore(learner, model, saved)

    # -- parsing -------------------------------------------------------------------

    def parse(self, block: Block, decoder: LineDecoder) -> JsonParsed | None:
        """Parse a block of JSON values, one per line; None if no layout fits the model.

        The lines are judged by the ``JsonDecoder`` this learner was made with (``decoder``
        is taken for the signature ``BlockLearner.parse`` shares).
        """
        data, offset, lines, locate = block.data, block.offset, block.lines, locator(block)
        if not data.endswith(b"\n"):
            return None
        found = self._layout_of(data)
        model = self.learner.model
        if found is None or not isinstance(model, SGDRegressor):
            return None
        weights = model.weights
        layout, spaced = found
        if not all(name in weights for name in layout.features):
            return None  # a new feature: the per-record path gives the model its weight
        features = layout.features
        inner = self._learners.get(features)
        if inner is None:
            inner = self._learners[features] = BlockLearner(features, self._kernels)
        self.inner = inner
        converted = self._to_csv(data, lines, layout, spaced)
        if converted is None:
            return None
        csv, good = converted
        # The CSV parser reads the lines in key order; rows it doubts come back NOTHING.
        reader = BlockLearner(layout.keys[:-1], self._kernels)
        csv_parsed = reader.parse_lines(csv, 0, _Unread(), lines)
        status = csv_parsed.status
        status[~good] = DOUBT
        status[status == NOTHING] = DOUBT
        status[status == UNLABELED] = DOUBT  # the decoder gives unlabeled rows their id
        self._check_numbers(csv, csv_parsed.starts, status)
        values = csv_parsed.values
        if layout.order != tuple(range(len(layout.keys))):
            values = values[:, layout.order]
        parsed = JsonParsed(
            values,
            status,
            csv_parsed.starts,
            data,
            offset,
            {},
            locate,
            features=list(features),
            stop=lines,
        )
        if locate is None:  # a file's lines: rows are the lines of ``data`` itself
            parsed.starts = _line_starts(data, lines)
        self._judge(parsed)
        return parsed

    def _layout_of(self, data: bytes) -> tuple[Layout, bool] | None:
        """The block's layout and style (blanks or not): the last layout if one of its first
        lines fits it, else the layout of the first of them that is a flat object of numbers."""
        start = 0
        for _ in range(8):  # the first few messages: one of them shows the layout
            end = data.find(b"\n", start)
            if end < 0:
                break
            line = data[start : end + 1]
            start = end + 1
            layout = self._layout
            if layout is None or self._style(line, layout) is None:
                try:
                    layout = Layout.of(orjson.loads(line), self.decoder)
                except orjson.JSONDecodeError:
                    continue
            if layout is not None:
                spaced = self._style(line, layout)
                if spaced is not None:
                    self._layout = layout
                    return layout, spaced
        return None

    @staticmethod
    def _style(line: bytes, layout: Layout) -> bool | None:
        """True (``json.dumps``'s blanks) or False (compact) if ``line`` fits the layout."""
        skeleton = line.translate(None, _NUMBER_BYTES)
        for spaced in (True, False):
            if skeleton == layout.skeleton(spaced):
                return spaced
        return None

    def _to_csv(
        self, data: bytes, lines: int, layout: Layout, spaced: bool
    ) -> tuple[bytes, np.ndarray] | None:
        """The block as CSV lines of numbers in key order, and which lines were checked.

        A line that fails a check becomes a line the CSV parser doubts (it starts with ``#``).
        """
        expected = layout.skeleton(spaced)
        skeleton = data.translate(None, _NUMBER_BYTES)
        text = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(text == 10)
        if len(ends) != lines:
            return None  # not one value a line: record by record
        starts = np.empty(lines, dtype=np.int64)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        quotes = np.flatnonzero(text == 34)
        if skeleton == expected * lines:
            good = np.ones(lines, dtype=bool)
        else:
            one = expected[:-1]
            good = np.array([line == one for line in skeleton.split(b"\n")[:lines]], dtype=bool)
            quotes = quotes[good[np.searchsorted(ends, quotes)]]
        rows = np.flatnonzero(good)
        n_keys = len(layout.keys)
        pairs = quotes.reshape(len(rows), 2 * n_keys)
        opens, closes = pairs[:, 0::2], pairs[:, 1::2]
        # Key bytes, byte for byte, at their places.
        lengths = np.array([len(key) for key in layout.key_bytes])
        which = np.repeat(np.arange(n_keys), lengths)
        within = np.concatenate([np.arange(length) for length in lengths]) + 1
        key_at = np.minimum(opens[:, which] + within, len(text) - 1)  # a shorter key: no overrun
        ok = (closes - opens - 1 == lengths).all(axis=1)
        ok &= (text[key_at] == np.frombuffer(b"".join(layout.key_bytes), np.uint8)).all(axis=1)
        # The separators around each number, at their places: nothing else between them.
        line_ends = ends[rows]
        ok &= opens[:, 0] == starts[rows] + 1  # only "{" before the first key
        ok &= text[line_ends - 1] == ord("}")  # only "}" after the last number
        ok &= (text[closes + 1] == ord(":")).all(axis=1)
        if spaced:
            ok &= (text[closes + 2] == ord(" ")).all(axis=1)
            ok &= (text[opens[:, 1:] - 1] == ord(" ")).all(axis=1)
            ok &= (text[opens[:, 1:] - 2] == ord(",")).all(axis=1)
        else:
            ok &= (text[opens[:, 1:] - 1] == ord(",")).all(axis=1)
        good[rows[~ok]] = False
        buffer = bytearray(data)
        view = np.frombuffer(buffer, dtype=np.uint8)
        view[key_at[ok].ravel()] = 34  # key bytes become quotes, deleted with them
        for row in np.flatnonzero(~good).tolist():
            if data[starts[row]] != 10:
                view[starts[row]] = ord("#")  # survives the deletion: the parser doubts it
        return bytes(buffer.translate(None, _STRUCTURE_BYTES)), good

    @staticmethod
    def _check_numbers(csv: bytes, starts: np.ndarray, status: np.ndarray) -> None:
        """Mark DOUBT the rows with a number JSON would not read as the CSV parser does."""
        classes = np.frombuffer((b"\n" + csv + b"\n").translate(_CLASSES), dtype=np.uint8)
        code = classes[:-2].astype(np.uint16) << 6
        code |= classes[1:-1].astype(np.uint16) << 3
        code |= classes[2:]
        wrong = np.flatnonzero(_BAD[code])
        if wrong.size:
            status[np.searchsorted(starts, wrong, side="right") - 1] = DOUBT

    def _judge(self, parsed: JsonParsed) -> None:
        """The decoder's verdict on every DOUBT row, in order, up to a record of other features."""
        decode = self.decoder.decode
        features = parsed.features
        status, values = parsed.status, parsed.values
        for row in np.flatnonzero(status == DOUBT).tolist():
            item: Decoded = decode(parsed.raw(row))
            if item is None:
                status[row] = NOTHING
            elif type(item) is Record:
                x = item.x
                if list(x) != features:  # other names, or summed in another order
                    parsed.stop = row
                    return
                values[row, :-1] = list(x.values())
                values[row, -1] = math.nan if item.y is None else item.y
                status[row] = UNLABELED if item.y is None else LABELED
            elif type(item) is Label:
                # No late-label join on the compiled path: what ``Daemon._late_label`` makes.
                item = Rejected(
                    "unjoined_label", f"no pending features for id {item.id!r}", item.raw
                )
                status[row] = REJECTED
            else:
                status[row] = REJECTED
            parsed.judged[row] = item


class _Unread:
    """The CSV parser's decoder for the lines it doubts: none is read there (NOTHING)."""

    @staticmethod
    def changes_schema(raw: Raw) -> bool:
        return False

    @staticmethod
    def decode(raw: Raw) -> None:
        return None


def _line_starts(data: bytes, lines: int) -> np.ndarray:
    starts = np.empty(lines + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:] = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1
    return starts
