"""The ``streamlearn`` command line: the click group and its ``run``, ``replay`` and ``inspect``.

``group`` holds the group and the ``--config`` loading, ``options`` every option of ``run``
and ``replay``, ``run`` and ``inspect`` the commands. Only this package (and
``streamlearn.producers.cli``) imports click; the daemon's modules raise plain errors that
the commands turn into click's.
"""

from streamlearn.cli import inspect, run
from streamlearn.cli.group import main

main.add_command(run.run)
main.add_command(run.replay)
main.add_command(inspect.inspect)

__all__ = ["main"]
