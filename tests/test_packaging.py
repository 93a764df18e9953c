"""`pip install .` works: daemon/ and producers/ land as the streamlearn package, with the CLI."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from streamhelpers import ROOT


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = wheels.glob("streamlearn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in (
        "streamlearn/cli/group.py",
        "streamlearn/sources/file.py",
        "streamlearn/models/sgd.py",
        "streamlearn/producers/__init__.py",
        "streamlearn/py.typed",
    ):
        assert expected in names
    assert not any(name.startswith(("daemon/", "producers/", "tests/")) for name in names)
    # The C kernels, compiled for this Python (the fast path runs on them).
    assert [n for n in names if n.startswith("streamlearn/fast/_kernels.") and n.endswith(".so")]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "streamlearn = streamlearn.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    subprocess.run(
        [str(pip), "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True
    )
    # Dependencies come from this environment; the package itself only from the wheel.
    deps = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": deps, "PATH": "/usr/bin:/bin"}
    version = subprocess.run(
        [str(venv / "bin" / "streamlearn"), "--version"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "streamlearn, version" in version.stdout
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import streamlearn, streamlearn.producers, streamlearn.fast._kernels as k; "
            "print(streamlearn.__file__); print(k.__file__)",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    package, kernels = where.stdout.split()
    assert Path(package).is_relative_to(venv) and Path(kernels).is_relative_to(venv)
    csv = tmp_path / "s.csv"
    csv.write_text("a,y\n1,2\n2,4\n")
    replay = subprocess.run(
        [str(venv / "bin" / "streamlearn"), "replay", str(csv), "--inspect-json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert replay.returncode == 0, replay.stderr
    assert '"records_learned": 2' in replay.stdout
