"""Kafka settings: URL, properties file, environment, -X, flags, and who wins."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from streamlearn.sources.kafka_config import (
    KafkaSettings,
    client_kwargs,
    load_client_config,
    parse_kafka_url,
    read_properties,
)


def properties(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "client.properties"
    path.write_text(text)
    path.chmod(mode)
    return path


# -- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("kafka://b1:9092/clicks", (["b1:9092"], "clicks", {})),
        ("kafka://b1,b2:9093/clicks", (["b1:9092", "b2:9093"], "clicks", {})),
        ("kafka://[::1]:9094/t?group=g1", (["[::1]:9094"], "t", {"group": "g1"})),
        ("KAFKA://b1:9092", (["b1:9092"], None, {})),
        ("kafka:///t.v2_x-y", ([], "t.v2_x-y", {})),
    ],
)
def test_urls_split_into_servers_topic_and_parameters(url: str, expected: tuple) -> None:
    assert parse_kafka_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://b1:9092/t", "not a kafka:// URL"),
        ("kafka://b1:99999/t", "the port must be 1-65535"),
        ("kafka://b1:x/t", "the port must be 1-65535"),
        ("kafka://b1:9092/a/b", "a single topic"),
        ("kafka://b1:9092/bad topic!", "not a valid Kafka topic name"),
        ("kafka://alice:secret@b1:9092/t", "credentials do not belong in a URL"),
    ],
)
def test_bad_urls_are_explained(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_kafka_url(url)


def test_credentials_in_a_url_are_not_echoed() -> None:
    with pytest.raises(ValueError) as failure:
        parse_kafka_url("kafka://alice:secret@b1:9092/t")
    assert "secret" not in str(failure.value)


# -- properties files ------------------------------------------------------------------------


def test_properties_file_syntax(tmp_path: Path) -> None:
    path = properties(
        tmp_path,
        "# comment\n"
        "! also a comment\n"
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism : SCRAM-SHA-512\n"
        "client.id streamlearn-eu\n"
        "ssl.ca.location = /etc/ssl/a\\\n"
        "    b/ca.pem\n"
        "sasl.password=p\\u00e4ss\\=word\n",
    )
    assert read_properties(path) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "client.id": "streamlearn-eu",
        "ssl.ca.location": "/etc/ssl/ab/ca.pem",
        "sasl.password": "päss=word",
    }


def test_a_missing_properties_file_is_a_plain_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_client_config(config_file=tmp_path / "nope.properties", environ={})


# -- security settings from the file and the environment --------------------------------------


def test_security_settings_from_a_file_in_any_spelling(tmp_path: Path) -> None:
    path = properties(
        tmp_path,
        "security.protocol=sasl_ssl\n"
        "sasl.mechanisms=scram-sha-256\n"
        "sasl.username=streamlearn\n"
        "sasl.password=123456\n"
        "ssl.ca.location=/etc/kafka/ca.pem\n"
        "ssl_certfile=/etc/kafka/client.pem\n"
        "ssl.key.location=/etc/kafka/client.key\n",
    )
    assert load_client_config(config_file=path, environ={}) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "streamlearn",
        "sasl_plain_password": "123456",  # stays text although it looks like a number
        "ssl_cafile": "/etc/kafka/ca.pem",
        "ssl_certfile": "/etc/kafka/client.pem",
        "ssl_keyfile": "/etc/kafka/client.key",
    }


def test_security_settings_from_the_environment() -> None:
    environ = {
        "STREAMLEARN_KAFKA_SECURITY_PROTOCOL": "SSL",
        "STREAMLEARN_KAFKA_SSL_CAFILE": "/run/secrets/ca.pem",
        "STREAMLEARN_KAFKA_SASL_PLAIN_PASSWORD": "from-env",
        "STREAMLEARN_KAFKA_SSL_CHECK_HOSTNAME": "false",
        "STREAMLEARN_KAFKA_SSL_KEYFILE": "",  # empty counts as unset
        "STREAMLEARN_KAFKA_CONFIG": "/etc/streamlearn/kafka.properties",  # the file, not a key
        "STREAMLEARN_OTHER": "ignored",
    }
    assert load_client_config(environ=environ) == {
        "sasl_plain_password": "from-env",
        "security_protocol": "SSL",
        "ssl_cafile": "/run/secrets/ca.pem",
        "ssl_check_hostname": False,
    }


def test_a_world_readable_file_with_a_password_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = properties(tmp_path, "sasl.password=x\n", mode=0o644)
    with caplog.at_level(logging.WARNING, logger="streamlearn.sources.kafka_config"):
        load_client_config(config_file=path, environ={})
    assert "readable by other users" in caplog.text


def test_a_password_in_x_flags_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="streamlearn.sources.kafka_config"):
        load_client_config(["sasl.password=oops"], environ={})
    assert "STREAMLEARN_KAFKA_SASL_PLAIN_PASSWORD" in caplog.text
    assert "oops" not in caplog.text


# -- precedence ------------------------------------------------------------------------------


def test_precedence_file_then_env_then_x_then_flags(tmp_path: Path) -> None:
    path = properties(
        tmp_path,
        "bootstrap.servers=file-broker:9092\n"
        "group.id=file-group\n"
        "client.id=from-file\n"
        "request.timeout.ms=1000\n"
        "retry.backoff.ms=10\n"
        "metadata.max.age.ms=100\n",
    )
    environ = {
        "STREAMLEARN_KAFKA_CLIENT_ID": "from-env",
        "STREAMLEARN_KAFKA_REQUEST_TIMEOUT_MS": "2000",
        "STREAMLEARN_KAFKA_RETRY_BACKOFF_MS": "20",
    }
    settings = KafkaSettings.build(
        topic="t",
        extra=["request.timeout.ms=3000"],
        config_file=path,
        environ=environ,
    )
    assert settings.bootstrap_servers == ["file-broker:9092"]
    assert settings.group_id == "file-group"
    assert settings.client_config == {
        "client_id": "from-env",
        "request_timeout_ms": 3000,  # -X beats env beats file
        "retry_backoff_ms": 20,  # env beats file
        "metadata_max_age_ms": 100,  # only in the file
    }

    flagged = KafkaSettings.build(
        bootstrap_servers="flag-broker:9093",
        topic="t",
        group_id="flag-group",
        extra=["bootstrap.servers=x-broker:9092", "group.id=x-group"],
        config_file=path,
        environ=environ,
    )
    assert flagged.bootstrap_servers == ["flag-broker:9093"]
    assert flagged.group_id == "flag-group"


def test_url_and_flags_must_agree() -> None:
    same = KafkaSettings.build(
        "kafka://b1:9092/t?group=g", bootstrap_servers="b1:9092", topic="t", environ={}
    )
    assert (same.bootstrap_servers, same.topic, same.group_id) == (["b1:9092"], "t", "g")
    with pytest.raises(ValueError, match="the topic is given twice"):
        KafkaSettings.build("kafka://b1:9092/t", topic="other", environ={})
    with pytest.raises(ValueError, match="the consumer group is given twice"):
        KafkaSettings.build("kafka://b1:9092/t?group=a", group_id="b", environ={})


def test_topic_from_the_flag_when_the_url_has_none() -> None:
    settings = KafkaSettings.build("kafka://b1:9092", topic="t", environ={})
    assert settings.topic == "t"


# -- mistakes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"topic": "t"}, "no Kafka bootstrap servers"),
        ({"bootstrap_servers": "b:9092"}, "no Kafka topic"),
        ({"source_url": "kafka://b:9092/t?acks=1"}, r"unknown parameter\(s\) acks"),
        ({"source_url": "kafka://b:9092/t", "start_from": "middle"}, "--from must be"),
        ({"source_url": "kafka://b:9092/t", "on_data_loss": "ignore"}, "--on-data-loss must be"),
        ({"source_url": "kafka://b:9092/t", "extra": ["nope.nope=1"]}, "unknown Kafka client"),
        ({"source_url": "kafka://b:9092/t", "extra": ["fetch.max.bytes=lots"]}, "whole number"),
        ({"source_url": "kafka://b:9092/t", "extra": ["enable.auto.commit=true"]}, "commits"),
        ({"source_url": "kafka://b:9092/t", "extra": ["auto.offset.reset=latest"]}, "--from"),
        ({"source_url": "kafka://b:9092/t", "extra": ["security.protocol=TLS"]}, "one of"),
        ({"source_url": "kafka://b:9092/t", "extra": ["value.deserializer=x"]}, "Python object"),
        ({"source_url": "kafka://b:9092/t", "extra": ["ssl.truststore.location=x"]}, "PEM"),
    ],
)
def test_mistakes_are_value_errors_with_plain_messages(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KafkaSettings.build(environ={}, **kwargs)


def test_a_missing_certificate_file_is_a_usage_error(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    with pytest.raises(ValueError, match=r"ssl_cafile .*ca.pem is not a readable file"):
        KafkaSettings.build("kafka://b:9092/t", extra=[f"ssl.ca.location={ca}"], environ={})
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = KafkaSettings.build("kafka://b:9092/t", extra=[f"ssl.ca.location={ca}"], environ={})
    assert settings.client_config == {"ssl_cafile": str(ca)}


def test_unknown_environment_keys_are_caught() -> None:
    with pytest.raises(ValueError, match="STREAMLEARN_KAFKA_SASL_PASWORD"):
        load_client_config(environ={"STREAMLEARN_KAFKA_SASL_PASWORD": "typo"})


# -- values and views ------------------------------------------------------------------------


def test_values_get_kafka_python_types() -> None:
    config = load_client_config(
        [
            "acks=all",
            "api.version=3.7.0",
            "retries=5",
            "check.crcs=no",
            "receive.buffer.bytes=65536",
            "compression.type=gzip",
        ],
        environ={},
    )
    assert config == {
        "acks": "all",
        "api_version": (3, 7, 0),
        "retries": 5,
        "check_crcs": False,
        "receive_buffer_bytes": 65536,
        "compression_type": "gzip",
    }


def test_each_client_gets_only_what_it_understands() -> None:
    config = {"max_poll_records": 5000, "linger_ms": 5, "security_protocol": "SSL"}
    assert client_kwargs(config, "consumer") == {
        "max_poll_records": 5000,
        "security_protocol": "SSL",
    }
    assert client_kwargs(config, "producer") == {"linger_ms": 5, "security_protocol": "SSL"}
    assert client_kwargs(config, "admin") == {"security_protocol": "SSL"}


def test_repr_hides_passwords() -> None:
    settings = KafkaSettings.build(
        "kafka://b:9092/t",
        environ={
            "STREAMLEARN_KAFKA_SASL_PLAIN_PASSWORD": "hunter2",
            "STREAMLEARN_KAFKA_SSL_PASSWORD": "k",
        },
    )
    assert settings.client_config["sasl_plain_password"] == "hunter2"
    assert "hunter2" not in repr(settings)
    assert "'ssl_password': '***'" in repr(settings)


def test_settings_are_frozen() -> None:
    settings = KafkaSettings(["b:9092"], "t")
    with pytest.raises(AttributeError):
        settings.topic = "other"  # type: ignore[misc]
