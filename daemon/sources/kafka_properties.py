"""Java-style ``.properties`` files, the format Kafka clients keep their settings in."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["read_properties"]


def read_properties(path: str | os.PathLike[str]) -> dict[str, str]:
    r"""Read a Java-style ``.properties`` file: ``key=value``, ``key: value`` or ``key value``.

    ``#`` and ``!`` start comments, a trailing backslash continues a line, and ``\t``, ``\n``,
    ``\\``, ``\=``, ``\:`` and ``\uXXXX`` escapes are understood.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "client.properties"
    >>> _ = path.write_text("# cluster\nsecurity.protocol=SASL_SSL\nsasl.mechanism : PLAIN\n")
    >>> read_properties(path)
    {'security.protocol': 'SASL_SSL', 'sasl.mechanism': 'PLAIN'}
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"Kafka config file {file} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"Kafka config file {file} is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read Kafka config file {file}: {exc}") from None

    properties: dict[str, str] = {}
    logical = ""
    for raw_line in text.splitlines():
        line = raw_line.lstrip()
        if not logical and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:  # an odd number of backslashes continues the line
            logical += line[:-1]
            continue
        logical += line
        key, value = _split_property(logical)
        properties[key] = value
        logical = ""
    if logical:
        key, value = _split_property(logical)
        properties[key] = value
    return properties


def _split_property(line: str) -> tuple[str, str]:
    key_chars: list[str] = []
    i = 0
    while i < len(line):
        char = line[i]
        if char == "\\" and i + 1 < len(line):
            key_chars.append(line[i : i + 2])
            i += 2
            continue
        if char in "=:" or char.isspace():
            break
        key_chars.append(char)
        i += 1
    rest = line[i:].lstrip()
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip()
    return _unescape("".join(key_chars)), _unescape(rest.rstrip())


def _unescape(text: str) -> str:
    escapes = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(escapes.get(nxt, nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)
