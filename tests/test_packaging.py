"""`pip install .` works: daemon/ and producers/ land as the streamlearn package, with the CLI;
and the `bench` extra (with `make bench`) installs what the benches import."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tomllib
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


# -- the bench extra ----------------------------------------------------------------------------

BENCH = ROOT / "bench"
#: Benches that need a package outside the dependencies, with arguments that get them to the check.
OPTIONAL_IN_BENCHES = {
    "bench_replay.py": ("vowpalwabbit", ["--processes-only", "--rows", "50", "--warm-rows", "10"]),
    "bench_kafka.py": ("confluent_kafka", ["--rows", "50"]),
    "bench_kafka_clients.py": ("confluent_kafka", ["--rows", "50"]),
    "bench_before_after.py": ("confluent_kafka", ["--before", "/nonexistent", "--rows", "50"]),
    "bench_latency.py": ("confluent_kafka", ["--skip-kafka"]),
    "bench_transfer.py": ("matplotlib", []),
}


def _canonical(requirement: str) -> str:
    """The distribution name of a requirement, normalized (PEP 503), extras kept apart."""
    name = re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _extra(project: dict, extra: str) -> set[str]:
    """The distributions an extra installs, following ``streamlearn[other]`` references."""
    names: set[str] = set()
    for requirement in project["optional-dependencies"].get(extra, []):
        if _canonical(requirement) == "streamlearn":
            for inner in re.findall(r"\[([^\]]*)\]", requirement)[0].split(","):
                names |= _extra(project, inner.strip())
        else:
            names.add(_canonical(requirement))
    return names


def _imported_distributions(text: str) -> set[str]:
    """Third-party distributions a bench imports, also in the driver scripts it holds as text."""
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    local = {path.stem for path in BENCH.glob("*.py")}
    statements = (
        r"^[ \t]*(?:from[ \t]+([A-Za-z_]\w*)[\w.]*[ \t]+import\b|import[ \t]+([\w., \t]+)$)"
    )
    modules = set()
    for source, names in re.findall(statements, text, re.MULTILINE):
        modules |= {source} if source else {n.split()[0].split(".")[0] for n in names.split(",")}
    modules -= {*sys.stdlib_module_names, "streamlearn", "__future__", *local}
    return {_canonical(owners.get(module, [module.replace("_", "-")])[0]) for module in modules}


@pytest.mark.slow
def test_the_bench_extra_installs_what_the_benches_import() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = {_canonical(r) for r in project["dependencies"]}
    assert "bench" in project["optional-dependencies"], "no `bench` extra in pyproject.toml"
    installed |= _extra(project, "bench")
    for path in sorted(BENCH.glob("*.py")):
        missing = _imported_distributions(path.read_text()) - installed
        assert not missing, f"{path.name} imports {sorted(missing)}: not in the bench extra"
    for script, (module, _) in OPTIONAL_IN_BENCHES.items():
        assert _imported_distributions(f"import {module}") <= installed, script


def test_make_bench_installs_the_bench_extra_first() -> None:
    make = subprocess.run(
        ["make", "-n", "-B", "bench", "PYTHON=python3", "VENV=/nonexistent-venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert make.returncode == 0, make.stderr
    lines = make.stdout.splitlines()
    installs = [i for i, line in enumerate(lines) if re.search(r"pip install .*\[bench\]", line)]
    benches = [i for i, line in enumerate(lines) if re.search(r"bench/bench_\w+\.py", line)]
    assert installs and benches, make.stdout
    assert installs[0] < benches[0], make.stdout


@pytest.mark.parametrize("script", sorted(OPTIONAL_IN_BENCHES))
def test_a_bench_without_its_optional_package_names_the_extra(tmp_path: Path, script: str) -> None:
    module, args = OPTIONAL_IN_BENCHES[script]
    # The package made missing for this process and its children (None in sys.modules).
    (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert module.replace("_", "-") in message.replace("_", "-") and "[bench]" in message
