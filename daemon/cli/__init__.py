"""The command line: every click option and subcommand."""

from streamlearn.cli.main import main

__all__ = ["main"]
