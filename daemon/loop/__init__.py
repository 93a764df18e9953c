"""The run loop: take a batch from the chosen record path, learn it, checkpoint when due.

``daemon`` (the loop itself), ``paths`` and ``blocks`` (the record paths and ``choose_path``),
``router`` (each record to where it belongs), ``guard`` (divergence restore),
``checkpointing`` (write, then commit), ``host`` (counters, and what collaborators may use),
``batch``, ``progress`` and ``summary`` (the ``inspect --json`` object).
"""

from .daemon import Daemon, RunOptions
from .summary import inspect_state

__all__ = ["Daemon", "RunOptions", "inspect_state"]
