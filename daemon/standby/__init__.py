"""One model, highly available: instances of one group elect the active learner through Kafka.

``run --standby`` with ``kafka://HOST:PORT/TOPIC?group=G`` and a shared ``--state-dir``: every
instance joins the consumer group ``G.active`` on the one-partition topic ``G.active``
(``coordinator``); the member the group assigns its partition is the active learner, the way
Kafka Connect and Schema Registry pick a leader. It takes the model over (``state.epoch``),
resumes from the last durable checkpoint and learns (``runner``). The others are hot
standbys (``follower``): they reload each checkpoint as it lands and serve ``/predict`` from
it. When the active instance dies or stalls past its session timeout, the group assigns
the partition to a standby, which takes over; the old one's writes are refused.
"""

from __future__ import annotations

from .role import Role

__all__ = ["Role"]
