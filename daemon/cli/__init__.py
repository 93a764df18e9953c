"""The ``streamlearn`` command line: the click group and every command.

``group`` holds the group, the lazily loaded commands and the ``--config`` loading;
``options`` (with ``kafka_options``, ``pseudo_options`` and ``drift_options``, each a table
applied by ``table.apply``) every option of ``run`` and ``replay``; ``run``, ``inspect``,
``broker``, ``pretrain`` and ``report`` the commands.
Only this package (and ``streamlearn.producers.cli``) imports click: the daemon's
modules raise plain errors that the commands turn into click's.
"""

from streamlearn.cli import inspect, run
from streamlearn.cli.group import main

main.add_command(run.run)
main.add_command(run.replay)
main.add_command(inspect.inspect)

__all__ = ["main"]
