"""Settings come from IOTCLOUD_* variables (and eventsourcing's own for the event store)."""

from __future__ import annotations

from pathlib import Path

from iotcloud.config import DEFAULT_API_PORT, Settings


def test_defaults_are_the_embedded_ones():
    settings = Settings.from_env({})
    assert settings.api_port == DEFAULT_API_PORT and settings.uses_embedded_mongodb
    assert settings.persistence_module == "eventsourcing.sqlite" and settings.state_dir.is_absolute()


def test_every_variable_is_read_and_cast():
    settings = Settings.from_env({
        "IOTCLOUD_API_PORT": "9000", "IOTCLOUD_COMMAND_TIMEOUT": "2.5", "IOTCLOUD_STATE_DIR": "/tmp/x",
        "IOTCLOUD_MONGODB_URI": "mongodb://db:27017/", "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_HOST": "pg", "POSTGRES_PASSWORD": "secret", "IOTCLOUD_BROKER": "none"})
    assert settings.api_port == 9000 and settings.command_timeout == 2.5
    assert settings.state_dir == Path("/tmp/x") and not settings.uses_embedded_mongodb
    assert settings.event_store_env("DeviceFleet") == {"PERSISTENCE_MODULE": "eventsourcing.postgres",
                                                       "POSTGRES_HOST": "pg", "POSTGRES_PASSWORD": "secret",
                                                       "POSTGRES_POOL_SIZE": "2", "POSTGRES_MAX_OVERFLOW": "8",
                                                       "APPLICATION_RECORDER_TOPIC":
                                                       "commands.chain.postgres_recorder:ChainedPostgresRecorder"}
    assert settings.describe()["postgres"]["POSTGRES_PASSWORD"] == "***"
    sized = Settings.from_env({"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_POOL_SIZE": "10"})
    assert sized.event_store_env("DeviceFleet")["POSTGRES_POOL_SIZE"] == "10"  # an operator's choice wins


def test_secrets_can_come_from_files_and_are_not_shown(tmp_path):
    (tmp_path / "pg").write_text("pg-secret\n")
    (tmp_path / "uri").write_text("mongodb://iotcloud:mongo-secret@mongo:27017/?authSource=admin\n")
    settings = Settings.from_env({"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_HOST": "db",
                                  "IOTCLOUD_POSTGRES_PASSWORD_FILE": str(tmp_path / "pg"),
                                  "IOTCLOUD_MONGODB_URI_FILE": str(tmp_path / "uri"), "IOTCLOUD_STATE_DIR": str(tmp_path)})
    assert settings.event_store_env("Accounts")["POSTGRES_PASSWORD"] == "pg-secret"
    assert settings.effective_mongodb_uri == "mongodb://iotcloud:mongo-secret@mongo:27017/?authSource=admin"
    assert not settings.uses_embedded_mongodb
    shown = repr(settings.describe())
    assert "pg-secret" not in shown and "mongo-secret" not in shown
