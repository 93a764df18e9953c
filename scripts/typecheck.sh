#!/usr/bin/env bash
# mypy over the package as it is installed: `streamlearn` (daemon/) with `streamlearn.producers`
# (producers/). Run on daemon/ itself, mypy names the modules `daemon.*`, cannot resolve any
# `streamlearn.*` import (the editable install is an import hook mypy does not follow) and, with
# ignore_missing_imports, types every such import as Any: the Protocols would go unchecked
# across modules. So the package is assembled from symlinks under build/ and checked by name.
#
#   bash scripts/typecheck.sh [MYPY]      (make typecheck)
set -euo pipefail
cd "$(dirname "$0")/.."
MYPY=$(realpath "${1:-.venv/bin/mypy}")
# A tree of its own for each run: two runs at once (make check beside an editor's) must not
# delete each other's links.
mkdir -p build
root=$(mktemp -d build/typecheck.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/streamlearn"
for entry in daemon/*; do
    case "$entry" in *.so|*__pycache__*) continue ;; esac
    ln -s "$PWD/$entry" "$root/streamlearn/$(basename "$entry")"
done
ln -s "$PWD/producers" "$root/streamlearn/producers"
config=$PWD/pyproject.toml
cd "$root"
# The whole package, then the loop, its seams and the state package under --strict. With a
# kept cache (MYPY_CACHE_DIR, as make check sets it) the --strict run keeps one of its own:
# sharing one, each run would find the other's entries made under other options and check
# everything again (25 s of CPU instead of about 1).
MYPYPATH=. "$MYPY" --config-file "$config" -p streamlearn
MYPYPATH=. MYPY_CACHE_DIR=${MYPY_CACHE_DIR:+$MYPY_CACHE_DIR/strict} "$MYPY" --config-file "$config" \
    --strict -m streamlearn.interfaces -p streamlearn.loop -p streamlearn.state
