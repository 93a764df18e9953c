#!/usr/bin/env bash
# The C kernels (daemon/fast/_kernels.c) under AddressSanitizer and UndefinedBehaviorSanitizer:
# builds an instrumented copy of the extension into a copy of the package, and runs the
# kernel tests against it (a fuzzed parser, random blocks, ADWIN on many streams). Any
# out-of-bounds access or undefined behaviour aborts the run with the sanitizer's report
# (pytest leaves file descriptor 2 alone: the report goes straight to the terminal).
#
#   bash scripts/sanitize-kernels.sh [PYTHON]      (make sanitize)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The package as the tests import it (daemon/ is `streamlearn`), with the instrumented build.
cp -r daemon "$work/streamlearn"
rm -f "$work"/streamlearn/fast/_kernels*.so
cp -r producers "$work/streamlearn/producers"
suffix=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
include=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
source=${KERNELS_SOURCE:-daemon/fast/_kernels.c}  # another source: to see the sanitizers catch a bug
gcc -shared -fPIC -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
    -fno-sanitize-recover=undefined -ffp-contract=off -std=c11 -Wall -Werror \
    -I"$include" "$source" -o "$work/streamlearn/fast/_kernels$suffix"

# Python is not built with ASan: its runtime must come first, and Python's own
# allocations are not leak-checked (they live until exit by design).
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONPATH="$work"
# The tests must import the instrumented build, not the installed one.
"$PYTHON" -c 'import sys, streamlearn.fast._kernels as k; assert k.__file__.startswith(sys.argv[1]), k.__file__' "$work"
"$PYTHON" -m pytest -q -p no:cacheprovider -o addopts="" --capture=sys \
    tests/test_kernels.py tests/test_class_kernels.py tests/test_adwin.py \
    tests/test_fastpath.py tests/test_keys_compiled.py tests/test_class_keys_compiled.py \
    tests/test_remember.py \
    -k "not sigkill and not replay_imports"
