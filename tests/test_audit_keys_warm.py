"""Issue 14 point 3: each key fine-tunes its own copy of model A in any transfer mode, equal
to a warm-started run of its own on that key's rows; A is loaded once (the file may be gone
once the run has started)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamlearn.app import build
from streamlearn.config import Settings
from streamlearn.keys.run import key_object

KEYS = ("north", "south")


def _model_a(tmp_path: Path) -> Path:
    import pandas as pd
    import skops.io
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 2)), columns=["f", "g"])
    a = MLPRegressor(hidden_layer_sizes=(5, 3), max_iter=2000, random_state=0)
    a.fit(frame, 2.0 * frame["f"] - frame["g"])
    path = tmp_path / "a.skops"
    skops.io.dump(a, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "layers"), [("finetune", 1), ("extract", 1), ("partial", 2)])
def test_each_key_fine_tunes_its_own_copy_of_a(tmp_path: Path, mode: str, layers: int) -> None:
    a = _model_a(tmp_path)
    rng = np.random.default_rng(1)
    rows: list[tuple[str, str]] = []
    for _ in range(120):
        key = KEYS[int(rng.integers(2))]
        f, g = (float(v) for v in rng.normal(size=2))
        y = (2.0 * f - g) if key == "north" else (-f + 3.0 * g)
        rows.append((key, f"{f!r},{g!r},{y!r}"))
    transfer = {"warm_start": str(a), "transfer_mode": mode, "trainable_layers": layers,
                "lr": 0.01, "lr_from_flag": True, "follow": False}  # fmt: skip
    want = {}
    for key in KEYS:  # the oracle: a warm-started run of its own per key
        own = tmp_path / f"{key}.csv"
        own.write_text("f,g,y\n" + "".join(f"{row}\n" for k, row in rows if k == key))
        alone = build(Settings(source=str(own), **transfer))  # type: ignore[arg-type]
        try:
            alone.daemon.run()
            want[key] = (alone.daemon.learner.records_learned, alone.daemon.learner.summary())
        finally:
            alone.close()
    keyed = tmp_path / "keyed.csv"
    keyed.write_text("store,f,g,y\n" + "".join(f"{k},{row}\n" for k, row in rows))
    settings = Settings(source=str(keyed), key_by="store", **transfer)  # type: ignore[arg-type]
    app = build(settings)
    a.unlink()  # loaded once: no key reads it again
    try:
        app.daemon.run()
        models = app.daemon.keyed
        assert models is not None
        for key in KEYS:
            learner = models.models.peek(key)
            assert learner is not None
            got = key_object(key, learner)
            records, metrics = want[key]
            assert got["records_learned"] == records > 40 and metrics["mae"] > 0, key
            for name, value in metrics.items():
                assert got["metrics"][name] == pytest.approx(value, rel=0, abs=1e-9), (key, name)
        # each key its own copy: the two keys' models answer differently
        north, south = (models.models.peek(key) for key in KEYS)
        assert north is not None and south is not None
        x = {"f": 1.0, "g": 1.0}
        assert north.model.predict_one(x) != south.model.predict_one(x)
    finally:
        app.close()
