"""Issue 15, point 6: a member asked for a key another instance owns answers 421 with that
instance's address when the owner record names one, and 503 with a reason when it does not
(or when the partition is being taken over here); 404 when no partition holds the key.

No broker: the shared store is laid out as a member leaves it (``take_over`` makes the
partition's epoch and owner record), holding the checkpoint of a one-process keyed replay;
the member's HTTP face is the real server, its learners none (none answers the key).
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streamhelpers import cli
from streamlearn.scaleout.partitions import take_over
from streamlearn.scaleout.serve import serve_member


@pytest.fixture(scope="module")
def keyed_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A keyed replay's state dir: keys k0, k1, k2."""
    work = tmp_path_factory.mktemp("keyed")
    rows = "".join(f"k{i % 3},{i},{2 * i}\n" for i in range(30))
    (work / "k.csv").write_text("key,a,y\n" + rows)
    cli("replay", str(work / "k.csv"), "--key-by", "key", "--state-dir", str(work / "state"))
    return work / "state"


def _shared(tmp_path: Path, keyed_state: Path, owner: str, address: str | None) -> Path:
    shared = tmp_path / "shared"
    _, directory = take_over(shared, "t", 0, owner, address=address)
    for entry in keyed_state.iterdir():
        if entry.is_dir():
            shutil.copytree(entry, directory / entry.name)
        elif entry.name != "lock":
            shutil.copy2(entry, directory / entry.name)
    return shared


def _ask(shared: Path, instance: str, key: str) -> tuple[int, dict[str, Any]]:
    member = SimpleNamespace(learners={}, state_dir=shared, instance=instance)
    settings = SimpleNamespace(metrics_port=0, metrics_host="127.0.0.1")
    server = serve_member(settings, member, CollectorRegistry())  # type: ignore[arg-type]
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/predict"
        body = json.dumps({"key": key, "x": {"a": 1.0}}).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
    finally:
        server.shutdown()
        server.server_close()


def test_an_owner_without_an_address_is_503_with_the_reason(tmp_path, keyed_state):
    shared = _shared(tmp_path, keyed_state, "a", None)
    status, answer = _ask(shared, "b", "k1")
    assert status == 503
    assert answer == {
        "key": "k1",
        "partition": 0,
        "owner": "a",
        "error": "partition 0 is owned by a, which serves no HTTP",
    }


def test_an_owner_with_an_address_is_421_to_it(tmp_path, keyed_state):
    shared = _shared(tmp_path, keyed_state, "a", "http://a.example:9100")
    status, answer = _ask(shared, "b", "k2")
    assert status == 421
    assert answer["address"] == "http://a.example:9100" and answer["owner"] == "a"


def test_a_partition_taken_over_here_but_not_serving_yet_is_503(tmp_path, keyed_state):
    shared = _shared(tmp_path, keyed_state, "b", "http://b.example:9100")
    status, answer = _ask(shared, "b", "k0")
    assert status == 503 and "being taken over here; retry shortly" in answer["error"]


def test_a_key_in_no_partition_is_404(tmp_path, keyed_state):
    shared = _shared(tmp_path, keyed_state, "a", None)
    status, answer = _ask(shared, "b", "never-seen")
    assert status == 404 and "never-seen" in answer["error"]
