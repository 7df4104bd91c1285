"""Settings: defaults, environment over YAML, secrets only from the environment or files."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.config import Settings
from notifier.entrypoints.cli import main

SECRET = "tw-auth-token-do-not-print"


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No NOTIFIER_* variable, config file or secrets directory of the developer's machine."""
    for name in list(os.environ):
        if name.upper().startswith("NOTIFIER_"):
            monkeypatch.delenv(name)
    empty_secrets = tmp_path / "no-secrets"
    empty_secrets.mkdir()
    monkeypatch.setenv("NOTIFIER_CONFIG_FILE", str(tmp_path / "missing.yaml"))
    monkeypatch.setenv("NOTIFIER_SECRETS_DIR", str(empty_secrets))


def config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notifier.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("NOTIFIER_CONFIG_FILE", str(path))
    return path


def secrets_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    for name, value in files.items():
        (directory / name).write_text(value, encoding="utf-8")
    monkeypatch.setenv("NOTIFIER_SECRETS_DIR", str(directory))
    return directory


def test_defaults_without_config_file_or_environment() -> None:
    settings = Settings()

    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka.group_id == "notifier"
    assert settings.kafka.send_requests_topic == "conversation.send-requests"
    assert settings.kafka.delivery_events_topic == "notifier.delivery-events"
    assert settings.kafka.dead_letter_topic == "notifier.dead-letter"
    assert settings.database.url == "sqlite+aiosqlite:///.local/notifier.db"
    assert settings.http.port == 8080
    assert settings.log.level == "INFO"
    assert settings.twilio.auth_token is None
    assert not settings.twilio.configured
    assert not settings.sendgrid.configured


def test_environment_variable_with_one_underscore_after_the_section_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFIER_KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("NOTIFIER_HTTP_PORT", "9000")

    settings = Settings()

    assert settings.kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert settings.http.port == 9000
    assert settings.kafka.group_id == "notifier"


def test_invalid_environment_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_HTTP_PORT", "70000")

    with pytest.raises(ValueError, match="port"):
        Settings()


def test_yaml_file_named_by_notifier_config_file_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config_file(
        monkeypatch,
        tmp_path,
        "kafka:\n  group_id: notifier-blue\n  partitions: 12\nlog:\n  level: DEBUG\n",
    )

    settings = Settings()

    assert settings.kafka.group_id == "notifier-blue"
    assert settings.kafka.partitions == 12
    assert settings.log.level == "DEBUG"


def test_environment_beats_yaml_and_both_merge_within_a_section(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config_file(
        monkeypatch,
        tmp_path,
        "kafka:\n  bootstrap_servers: yaml-broker:9092\n  group_id: notifier-blue\n",
    )
    monkeypatch.setenv("NOTIFIER_KAFKA_BOOTSTRAP_SERVERS", "env-broker:9092")

    settings = Settings()

    assert settings.kafka.bootstrap_servers == "env-broker:9092"
    assert settings.kafka.group_id == "notifier-blue"


def test_secret_in_the_yaml_file_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config_file(monkeypatch, tmp_path, f"twilio:\n  account_sid: AC123\n  auth_token: {SECRET}\n")

    with pytest.raises(ValueError, match="NOTIFIER_TWILIO_AUTH_TOKEN") as error:
        Settings()

    assert SECRET not in str(error.value)


def test_sendgrid_key_in_the_yaml_file_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config_file(monkeypatch, tmp_path, "sendgrid:\n  api_key: SG.secret\n")

    with pytest.raises(ValueError, match="NOTIFIER_SENDGRID_API_KEY"):
        Settings()


def test_secret_is_read_from_a_file_in_the_secrets_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets_dir(monkeypatch, tmp_path, NOTIFIER_TWILIO_AUTH_TOKEN=SECRET)
    monkeypatch.setenv("NOTIFIER_TWILIO_ACCOUNT_SID", "AC123")

    settings = Settings()

    assert settings.twilio.auth_token is not None
    assert settings.twilio.auth_token.get_secret_value() == SECRET
    assert settings.twilio.configured


def test_secret_file_ending_in_a_newline_is_read_without_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets_dir(monkeypatch, tmp_path, NOTIFIER_TWILIO_AUTH_TOKEN=SECRET + "\n")

    auth_token = Settings().twilio.auth_token

    assert auth_token is not None
    assert auth_token.get_secret_value() == SECRET


def test_secret_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_SENDGRID_API_KEY", "SG.from-env")

    settings = Settings()

    assert settings.sendgrid.api_key is not None
    assert settings.sendgrid.api_key.get_secret_value() == "SG.from-env"


def test_secret_does_not_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_TWILIO_AUTH_TOKEN", SECRET)

    assert SECRET not in repr(Settings())


def test_redacted_configuration_shows_secrets_only_as_set_or_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets_dir(monkeypatch, tmp_path, NOTIFIER_TWILIO_AUTH_TOKEN=SECRET)

    redacted = Settings().redacted()

    assert SECRET not in json.dumps(redacted)
    assert redacted["twilio"]["auth_token"] == "**********"
    assert redacted["sendgrid"]["api_key"] is None
    assert redacted["kafka"]["bootstrap_servers"] == "127.0.0.1:9092"


@pytest.fixture
def restored_logging() -> Iterator[None]:
    # The command configures logging as the process would; give the next tests theirs back.
    aiokafka = logging.getLogger("aiokafka")
    level = aiokafka.level
    yield
    aiokafka.setLevel(level)


@pytest.mark.usefixtures("restored_logging")
def test_config_command_prints_json_without_the_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOTIFIER_TWILIO_AUTH_TOKEN", SECRET)
    monkeypatch.setenv("NOTIFIER_KAFKA_BOOTSTRAP_SERVERS", "env-broker:9092")

    assert main(["config"]) == 0

    out = capsys.readouterr().out
    assert SECRET not in out
    printed = json.loads(out)
    assert printed["twilio"]["auth_token"] == "**********"
    assert printed["kafka"]["bootstrap_servers"] == "env-broker:9092"
