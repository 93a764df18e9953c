"""The container image without a Docker engine: the wheel its build stage makes from exactly the
files the Dockerfile copies (after its ignore file) holds the compiled kernels, and they import."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from deploy_files import (
    DOCKERFILE,
    DOCKERIGNORE,
    Stage,
    context_files,
    dockerfile_stages,
    dockerignore_rules,
)
from streamhelpers import ROOT


def pip_commands(stage: Stage) -> list[list[str]]:
    """The ``pip ...`` commands of the stage's RUN instructions, as argument lists."""
    commands = []
    for run in stage.arguments("RUN"):
        for part in run.replace(";", "&&").split("&&"):
            words = shlex.split(part)
            if words[:1] == ["pip"] or words[:3] == ["python", "-m", "pip"]:
                commands.append(words[words.index("pip") + 1 :])
    return commands


def builds_the_project(command: list[str]) -> bool:
    return command[:1] in (["wheel"], ["install"]) and "." in command


def build_stage(stages: list[Stage]) -> Stage:
    """The stage that builds the project from the sources copied out of the build context."""
    builders = [s for s in stages if any(builds_the_project(c) for c in pip_commands(s))]
    assert len(builders) == 1, "expected one stage running `pip wheel .` (or `pip install .`)"
    return builders[0]


def assemble_context(stage: Stage, root: Path) -> Path:
    """Copy what ``stage``'s COPY lines take from the context into ``root``; return the WORKDIR
    of its build command.

    Only files the ignore file lets through are there to copy, as in ``docker build``.
    """
    sent = context_files(ROOT, dockerignore_rules(DOCKERIGNORE.read_text()))
    workdir = PurePosixPath("/")
    for keyword, args in stage.instructions:
        if keyword == "WORKDIR":
            workdir = workdir / args
        if keyword == "RUN" and any(
            builds_the_project(c) for c in pip_commands(Stage("", None, [(keyword, args)]))
        ):
            break
        if keyword != "COPY" or "--from" in args:
            continue
        *sources, dest = [w for w in shlex.split(args) if not w.startswith("--")]
        target = workdir / dest
        for source in sources:
            source = source.rstrip("/")
            if source in sent:
                name = PurePosixPath(source).name
                where = target / name if dest.endswith("/") or len(sources) > 1 else target
                files = {source: where}
            else:
                files = {
                    f: target / f[len(source) + 1 :] for f in sent if f.startswith(source + "/")
                }
            assert files, f"COPY {source}: not in the build context (see {DOCKERIGNORE.name})"
            for relative, where in files.items():
                destination = root / where.relative_to("/")
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / relative, destination)
    return root / workdir.relative_to("/")


def wheel_command(command: list[str], out: Path) -> list[str]:
    """The stage's pip command as a wheel build into ``out`` (``pip install .`` builds this wheel).

    ``--no-build-isolation`` builds with this environment's setuptools instead of downloading one,
    and ``--no-deps`` builds the project's wheel only: the dependencies are pure or prebuilt.
    """
    args = [a for a in command[1:] if a != "--no-cache-dir"]
    for flag in ("-w", "--wheel-dir"):
        if flag in args:
            at = args.index(flag)
            del args[at : at + 2]
    return [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        *args,
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(out),
    ]


def test_build_stage_compiles_and_the_slim_runtime_installs_its_wheel() -> None:
    stages = dockerfile_stages(DOCKERFILE.read_text())
    builder, runtime = build_stage(stages), stages[-1]
    assert builder is not runtime, "the image should not carry the compiler: build in a stage"
    assert builder.name, "the build stage needs a name for COPY --from"
    installs = " ".join(builder.arguments("RUN"))
    assert "apt-get install" in installs and "gcc" in installs, "the build stage needs a compiler"
    assert runtime.base.endswith("-slim")
    assert "gcc" not in " ".join(runtime.arguments("RUN"))
    assert any(f"--from={builder.name}" in copy for copy in runtime.arguments("COPY"))
    [install] = [c for c in pip_commands(runtime) if c[:1] == ["install"]]
    assert any(a.endswith(".whl") for a in install), "the runtime installs the built wheel"
    # A compiled object from the host would be for its libc and CPU: the image builds its own.
    sent = context_files(ROOT, dockerignore_rules(DOCKERIGNORE.read_text()))
    assert not [f for f in sent if f.endswith((".so", ".o", ".pyc"))]


@pytest.mark.slow
def test_image_build_context_makes_a_wheel_with_the_kernels(tmp_path: Path) -> None:
    builder = build_stage(dockerfile_stages(DOCKERFILE.read_text()))
    workdir = assemble_context(builder, tmp_path / "image")
    [command] = [c for c in pip_commands(builder) if builds_the_project(c)]
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        wheel_command(command, wheels), cwd=workdir, capture_output=True, text=True, timeout=600
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("streamlearn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    kernels = [n for n in names if n.startswith("streamlearn/fast/_kernels") and n.endswith(".so")]
    assert kernels, f"no compiled kernels in the image's wheel: {sorted(names)}"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    subprocess.run(
        [*pip, "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    # The dependencies come from this environment; streamlearn only from the wheel.
    env = {"PYTHONPATH": sysconfig.get_paths()["purelib"], "PATH": "/usr/bin:/bin"}
    where = subprocess.run(
        [str(python), "-c", "import streamlearn.fast._kernels as k; print(k.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv)
