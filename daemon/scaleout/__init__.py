"""Scale-out of a keyed run over a Kafka consumer group: partitions and their models move.

``partitions`` lays out the shared state store (one subtree per partition, one directory per
epoch of ownership) and fences stale owners; ``member`` is the group member that owns
partitions and runs one learner process per partition (``child``).
"""
