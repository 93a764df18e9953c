"""The stop flag a signal handler sets: ``set`` takes no lock its own thread may hold.

A Python signal handler runs in the main thread between two of its instructions, wherever
they are. ``threading.Event.set`` takes the lock that ``Event.wait`` holds across several
instructions of its own, so a SIGTERM arriving while the main thread waits on the event
(the loop idles on it between records) can make the handler wait forever for a lock its
own thread holds: the learner logs that it got the signal, then hangs.

``StopFlag`` is built on ``queue.SimpleQueue``, whose ``put`` is reentrant by contract (it
"can be interrupted by another put() call in the same thread without deadlocking"), and
whose ``get`` runs the handler while it waits and then returns at once.
"""

from __future__ import annotations

import queue

__all__ = ["StopFlag"]


class StopFlag:
    """A one-way flag to wait on: ``threading.Event``'s ``set``/``is_set``/``wait``, with a
    ``set`` that a signal handler may call at any moment.

    >>> flag = StopFlag()
    >>> flag.is_set(), flag.wait(0.01)
    (False, False)
    >>> flag.set()
    >>> flag.is_set(), flag.wait(10), flag.wait()
    (True, True, True)
    """

    def __init__(self) -> None:
        self._set = False
        self._token: queue.SimpleQueue[None] = queue.SimpleQueue()

    def set(self) -> None:
        """Set the flag and wake every wait; safe in a signal handler and from any thread."""
        self._set = True
        self._token.put(None)  # reentrant; a token per call, so none is ever missing

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set or ``timeout`` seconds passed; whether it is set."""
        if self._set:
            return True
        try:
            self._token.get(timeout=timeout)
        except queue.Empty:
            return self._set
        self._token.put(None)  # the next waiter's token: the flag stays set
        return True
