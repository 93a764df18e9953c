"""The package stays readable: no module over 500 lines, no function over 80.

The exceptions are the kernels' line-by-line Python specification (each function mirrors one C
function of ``fast/_kernels.c``, to be read side by side with it) and declarative option tables.
Each exception is named here with its reason, and the module says why too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE_LINES = 500
FUNCTION_LINES = 80

#: (module, function or None for the module itself) -> why it may be longer.
EXEMPT = {
    ("daemon/fast/spec.py", None): "the kernels' Python specification, one module",
    ("daemon/fast/spec.py", "parse_lines"): "mirrors parse_lines in _kernels.c line for line",
    ("daemon/fast/spec.py", "learn_rows"): "mirrors learn_rows in _kernels.c line for line",
    ("daemon/fast/spec.py", "feed_values"): "mirrors feed_values in _kernels.c line for line",
}


def modules() -> list[Path]:
    return sorted([*ROOT.glob("daemon/**/*.py"), *ROOT.glob("producers/*.py")])


def sizes(path: Path) -> tuple[int, dict[str, int]]:
    text = path.read_text()
    functions = {
        node.name: (node.end_lineno or node.lineno) - node.lineno + 1
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    return text.count("\n"), functions


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    name = str(path.relative_to(ROOT))
    lines, functions = sizes(path)
    if (name, None) not in EXEMPT:
        assert lines <= MODULE_LINES, f"{name} has {lines} lines: split it by concept"
    long = {
        function: length
        for function, length in functions.items()
        if length > FUNCTION_LINES and (name, function) not in EXEMPT
    }
    assert not long, f"{name}: functions over {FUNCTION_LINES} lines: {long}"


def test_every_exemption_is_still_needed_and_says_why() -> None:
    for (name, function), reason in EXEMPT.items():
        lines, functions = sizes(ROOT / name)
        size = lines if function is None else functions[function]
        limit = MODULE_LINES if function is None else FUNCTION_LINES
        assert size > limit, f"{name} {function or ''} is short enough now: drop its exemption"
        assert reason
    assert "Exempt from the size limits" in (ROOT / "daemon/fast/spec.py").read_text()
