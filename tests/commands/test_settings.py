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
                                                       "APPLICATION_RECORDER_TOPIC":
                                                       "commands.chain.postgres_recorder:ChainedPostgresRecorder"}
    assert settings.describe()["postgres"]["POSTGRES_PASSWORD"] == "***"
