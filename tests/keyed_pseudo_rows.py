"""A keyed stream with pseudo-labels (``--pseudo-label --key-by``), and how to replay it.

Used by tests/test_keyed_pseudo*.py: rows of four keys, each with weights of its own, most
of them unlabeled, some with a late label; a daemon built on them with small pseudo-label
knobs, deterministic.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from streamlearn.app import build
from streamlearn.config import Settings
from streamlearn.labels.settings import PseudoSettings

KEYS = ("north", "south", "east", "west")
#: Knobs small enough that each key decides several windows, accepts and rejects.
PSEUDO = {"pseudo_window": 8, "pseudo_threshold": 0.3, "teacher_k": 3}


def stream(seed: int = 3, rows: int = 600) -> list[tuple[str, str, str]]:
    """(key, id, CSV row of id,a,b,y) in stream order: each key with its own weights, its
    first 6 rows labeled, then 3 of 4 unlabeled; a few late labels come 5-40 rows later."""
    rng = random.Random(seed)
    weights = {key: (rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(-1, 1)) for key in KEYS}
    seen = dict.fromkeys(KEYS, 0)
    out: list[tuple[str, str, str]] = []
    late: list[tuple[int, str, str, float]] = []
    for i in range(rows):
        key = rng.choice(KEYS)
        w1, w2, b = weights[key]
        a, c = rng.uniform(-1, 1), rng.uniform(-1, 1)
        y = w1 * a + w2 * c + b + rng.gauss(0, 0.05)
        labeled = seen[key] < 6 or rng.random() < 0.25
        seen[key] += 1
        rid = f"r{i}"
        out.append((key, rid, f"{rid},{a!r},{c!r},{y!r}" if labeled else f"{rid},{a!r},{c!r},"))
        if not labeled and rng.random() < 0.2:
            late.append((i + rng.randrange(5, 40), key, rid, y))
        while late and late[0][0] <= i:
            _, lkey, lid, ly = late.pop(0)
            out.append((lkey, lid, f"{lid},,,{ly!r}"))
        late.sort()
    return out


def build_keyed(path: Path, follow: bool = False, **extra: Any) -> Any:
    knobs = {**PSEUDO, **extra.pop("pseudo", {})}
    pseudo = PseudoSettings(pseudo_label=True, deterministic=True, **knobs)
    given = {"target": "y", "id_column": "id", "model": "sgd", "lr": 0.1, **extra}
    return build(Settings(source=str(path), follow=follow, pseudo=pseudo, **given))


def run(path: Path, **extra: Any) -> Any:
    """A replay of ``path``; the app is open (its keys readable) until closed."""
    app = build_keyed(path, **extra)
    try:
        app.daemon.run()
        return app
    except BaseException:
        app.close()
        raise


def keyed_stream(rows: list[tuple[str, str, str]], path: Path) -> None:
    path.write_text("store,id,a,b,y\n" + "".join(f"{k},{row}\n" for k, _, row in rows))
