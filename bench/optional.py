"""The benches' optional packages: a missing one stops a bench at once with one line naming the
extra that installs it, not with a traceback minutes into the run."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def require(*modules: str, extra: str = "bench") -> None:
    """Exit (status 1) with one line on stderr when one of ``modules`` cannot be imported."""
    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        script = Path(sys.argv[0]).name
        sys.exit(
            f"{script} needs {', '.join(missing)}: pip install -e '.[{extra}]' (or make bench)"
        )
