"""Issue 14 point 6 over HTTP where test_keyed_http.py stops: a spilled key is described and
predicted by its own model; a key without one gets model A (``--key-fallback warm``), marked;
``/model?key=`` reads the key as ``/predict`` does (stripped; an empty key is a 400)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_keyed_http import ROWS, serve, three_keys

from prom_server import free_port
from streamlearn.config import Settings


@pytest.mark.slow
def test_a_spilled_key_and_the_warm_fallback_over_http(tmp_path: Path) -> None:
    import pandas as pd
    import skops.io
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    a = LinearRegression().fit(frame, 4.0 * frame["a"] + 1.0)
    model_a = tmp_path / "a.skops"
    skops.io.dump(a, model_a)
    settings = Settings(
        source=str(three_keys(tmp_path)), follow=True, state_dir=tmp_path / "state",
        metrics_port=free_port(), key_by="store", max_live_keys=1, warm_start=str(model_a),
        key_fallback="warm",
    )  # fmt: skip
    daemon = serve(settings, ROWS)
    try:
        keyed = daemon.app.daemon.keyed
        assert keyed is not None and keyed.models.live == 1  # the other two: not in memory
        for key in ("s0", "s1", "s2"):
            status, info = daemon.call("GET", f"/model?key={key}")
            assert status == 200, info
            learner = keyed.models.peek(key)
            assert learner is not None
            assert info["key"] == key and info["records_learned"] == ROWS // 3
            status, answer = daemon.call("POST", "/predict", {"key": key, "x": {"a": 0.5}})
            assert status == 200 and "fallback" not in answer, answer
            assert answer["prediction"] == learner.model.predict_one({"a": 0.5})
        status, answer = daemon.call("POST", "/predict", {"key": "new", "x": {"a": 0.5}})
        assert status == 200, answer
        assert answer["key"] == "new" and answer["fallback"] == "warm"
        want = float(a.predict(pd.DataFrame({"a": [0.5]}))[0])
        assert abs(answer["prediction"] - want) < 1e-9
        status, missing = daemon.call("GET", "/model?key=new")
        assert status == 404 and "'new'" in missing["error"]
        # the key as /predict reads it: stripped, and an empty key is no key
        status, info = daemon.call("GET", "/model?key=%20s1%20")
        assert status == 200 and info["key"] == "s1", info
        status, empty = daemon.call("GET", "/model?key=")
        assert status == 400 and "key" in empty["error"], empty
    finally:
        daemon.close()
