"""``python -m streamlearn.cli``: the same as the ``streamlearn`` command."""

from streamlearn.cli import main

main()
