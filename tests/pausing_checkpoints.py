"""Runs the ``streamlearn`` command with its forked checkpoint children pausing halfway.

``python tests/pausing_checkpoints.py SECONDS ARGS...`` is ``streamlearn ARGS...`` whose
checkpoint children sleep SECONDS halfway through writing their file
(``BackgroundWriter.child_pause``), so that a test can kill the daemon meanwhile.
"""

from __future__ import annotations

import sys

from streamlearn.cli import main
from streamlearn.state import BackgroundWriter

if __name__ == "__main__":
    BackgroundWriter.child_pause = float(sys.argv[1])
    sys.argv = ["streamlearn", *sys.argv[2:]]
    main()
