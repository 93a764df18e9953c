"""ConfluentKafkaSource against a real Kafka-protocol broker.

Every behaviour ``test_kafka_source.py`` checks for any Kafka source is checked here too, with
ConfluentKafkaSource: those tests are imported and run with this module's ``source_class``,
``rewind`` and ``retention_deleted_first_records`` fixtures. Added here: the Source contract,
states that KafkaSource and ConfluentKafkaSource resume from each other, librdkafka settings.

Skipped when confluent-kafka is not installed, except in CI (``CI=true``), where that fails.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("confluent_kafka", reason="confluent-kafka is not installed")

from conftest import KafkaHarness

# KafkaSource's tests, run here with ConfluentKafkaSource (the fixtures below).
from test_kafka_source import (  # noqa: F401
    MakeSource,
    make_source,
    positions,
    read_until,
    test_a_block_holds_what_next_batch_hands_out,
    test_a_broker_that_is_down_at_start_is_waited_for,
    test_a_commit_right_before_close_still_lands,
    test_a_paused_broker_costs_no_records_and_raises_nothing,
    test_a_snapshot_of_another_topic_is_refused,
    test_a_topic_that_does_not_exist_yet_is_waited_for,
    test_commit_is_visible_to_the_group_tools,
    test_data_loss_fails_loudly_by_default,
    test_data_loss_reset_skips_to_the_log_start_and_records_it,
    test_empty_and_null_values_still_come_out,
    test_every_record_is_returned_exactly_once_in_partition_order,
    test_group_commit_is_the_fallback_for_partitions_the_checkpoint_lacks,
    test_lag_counts_records_not_yet_returned,
    test_latest_does_not_apply_to_a_topic_created_after_start,
    test_new_partitions_are_picked_up,
    test_offset_gaps_are_counted,
    test_records_below_next_offset_are_dropped_and_counted,
    test_resume_from_a_snapshot_returns_exactly_the_rest,
    test_start_from_latest_skips_what_was_there,
    test_without_a_group_commit_does_nothing,
)

# The contract tests, run here against this module's ``harness`` fixture.
from test_source_contract import (  # noqa: F401
    test_batches_respect_max_items,
    test_close_twice_is_fine,
    test_idle_poll_returns_empty_list,
    test_partial_last_line_is_never_emitted,
    test_resume_after_last_item_returned,
)

from streamlearn.sources.base import Raw, SourceError
from streamlearn.sources.kafka import KafkaSource
from streamlearn.sources.kafka_base import KafkaSourceBase
from streamlearn.sources.kafka_config import KafkaSettings
from streamlearn.sources.kafka_confluent import ConfluentKafkaSource, _Watcher, librdkafka_config

pytestmark = pytest.mark.kafka


@pytest.fixture
def source_class() -> type[KafkaSourceBase[Any]]:
    return ConfluentKafkaSource


@pytest.fixture
def rewind() -> Callable[[Any, int, int], None]:
    """Moves a source's fetch position behind its back, as a client-side reset would."""

    def seek(source: ConfluentKafkaSource, partition: int, offset: int) -> None:
        from confluent_kafka import TopicPartition

        assert source._consumer is not None
        source._consumer.seek(TopicPartition(source.topic, partition, offset))

    return seek


@pytest.fixture
def retention_deleted_first_records(monkeypatch: pytest.MonkeyPatch) -> int:
    """Make the log start read 5 records later than it is (tansu cannot delete records)."""
    shift = 5
    real = _Watcher._publish

    def publish(self: _Watcher, observation: Any) -> None:
        shifted = {p: start + shift for p, start in observation.log_start.items()}
        real(self, dataclasses.replace(observation, log_start=shifted))

    monkeypatch.setattr(_Watcher, "_publish", publish)
    return shift


class ConfluentHarness(KafkaHarness):
    """The contract harness of ``conftest.py``, opening a ConfluentKafkaSource instead."""

    source_class = ConfluentKafkaSource


@pytest.fixture
def harness(tmp_path: object, kafka_bootstrap: str) -> Iterator[ConfluentHarness]:
    made = ConfluentHarness(tmp_path, kafka_bootstrap)
    yield made
    made.close()


def test_states_are_interchangeable_with_kafka_source(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send: Callable[..., None],
    make_source: MakeSource,  # noqa: F811 (the imported fixture)
) -> None:
    topic = kafka_topic_factory(2)
    for partition in range(2):
        kafka_send(topic, [b"%d-%d" % (partition, i) for i in range(30)], partition=partition)
    # kafka-python first, then confluent, then kafka-python again: no record lost or repeated.
    first = make_source(kafka_bootstrap, topic, cls=KafkaSource)
    taken: list[Raw] = []
    while len(taken) < 20:
        taken.extend(first.next_batch(9))
    first.close()
    second = make_source(kafka_bootstrap, topic, resume=first.snapshot())
    middle: list[Raw] = []
    while len(middle) < 20:
        middle.extend(second.next_batch(9))
    second.close()
    assert second.snapshot().keys() == first.snapshot().keys()
    third = make_source(kafka_bootstrap, topic, resume=second.snapshot(), cls=KafkaSource)
    rest = read_until(third, 60 - len(taken) - len(middle))
    third.close()

    everything = positions(taken) + positions(middle) + positions(rest)
    assert sorted(everything) == [(p, i) for p in range(2) for i in range(30)]


def test_settings_librdkafka_rejects_fail_at_construction(kafka_bootstrap: str) -> None:
    settings = KafkaSettings(
        [kafka_bootstrap], "t", client_config={"no_such_librdkafka_setting": "1"}
    )
    with pytest.raises(SourceError, match="rejected the Kafka settings"):
        ConfluentKafkaSource(settings)
    config = librdkafka_config(
        KafkaSettings([kafka_bootstrap], "t", client_config={"sasl_plain_username": "u"})
    )
    assert config["sasl.username"] == "u"
