"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the Compose
specification's JSON schema (vendored), the CLI commands and settings the services use, ports,
volumes, secrets, start order, and hadolint on the Dockerfile."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import jsonschema
import pytest
import yaml

from iotcloud.cli import parser
from iotcloud.config import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SCHEMA = json.loads((REPO / "deploy" / "compose" / "compose-spec.json").read_text())
PLATFORM_IMAGE = "iotcloud:local"
# Commands that other branches add; each must leave this set once it exists (see the test below).
PENDING_COMMANDS: set[str] = set()
# eventsourcing's PostgreSQL variables the platform hands through (config.Settings.postgres);
# POSTGRES_PASSWORD is not among them: it comes from IOTCLOUD_POSTGRES_PASSWORD_FILE.
EVENTSOURCING_POSTGRES = {"POSTGRES_DBNAME", "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_SCHEMA"}


def platform_services() -> dict[str, dict]:
    return {name: s for name, s in COMPOSE["services"].items() if s.get("image") == PLATFORM_IMAGE}


def cli_commands() -> set[str]:
    subparsers = next(a for a in parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return set(subparsers.choices)


def settings_of(service: dict) -> Settings:
    return Settings.from_env({k: str(v) for k, v in service.get("environment", {}).items()})


def test_the_compose_file_validates_against_the_compose_specification():
    validator = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)
    errors = sorted(validator.iter_errors(COMPOSE), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    # The vendored schema is the specification's, not something that accepts anything.
    assert list(validator.iter_errors({"services": {"x": {"image": "a", "depends_on": {"y": {}}}}}))
    assert list(validator.iter_errors({"services": {"x": {"image": "a", "no_such_key": 1}}}))


def test_every_service_the_platform_runs_is_there_from_one_image():
    services = platform_services()
    assert {"init", "api", "gateway", "projector", "broker-auth", "signer", "notifier"} <= set(services)
    assert {"postgres", "mongo", "rabbitmq"} <= set(COMPOSE["services"])
    assert all(s["build"] == {"context": ".", "dockerfile": "Dockerfile"} for s in services.values())


def test_every_command_a_service_runs_exists_in_the_cli():
    commands = cli_commands()
    used = set()
    for name, service in platform_services().items():
        used.add(service["command"][0])
        if name == "init":  # one-shot: it has no health, it completes
            continue
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "iotcloud", "probe"], (name, test)
        used.add(test[2])
    assert used - commands == PENDING_COMMANDS - commands, f"missing from the CLI: {used - commands}"
    # A pending command that now exists must be checked like the others: drop it from PENDING_COMMANDS
    # (and the compose file's profile that keeps its service off).
    assert not PENDING_COMMANDS & commands, f"{PENDING_COMMANDS & commands} exist now: update this test"


def test_every_environment_variable_is_one_the_settings_read():
    known = {"PERSISTENCE_MODULE", *EVENTSOURCING_POSTGRES} | {
        f"IOTCLOUD_{f.name.upper()}" for f in fields(Settings) if f.name not in ("postgres", "persistence_module")}
    for name, service in platform_services().items():
        environment = service.get("environment", {})
        assert set(environment) - known == set(), (name, set(environment) - known)
        settings_of(service)  # every value parses as its setting's type


def test_no_secret_is_an_environment_variable_and_secret_files_are_mounted():
    for name, service in COMPOSE["services"].items():
        environment = service.get("environment", {})
        for key, value in environment.items():
            if re.search(r"PASSWORD|SECRET|TOKEN|_KEY$|_URI$", key):
                assert key.endswith("_FILE"), f"{name}: {key} holds a secret in the environment"
            if key.endswith("_FILE") and str(value).startswith("/run/secrets/"):
                assert str(value).removeprefix("/run/secrets/") in service.get("secrets", []), (name, key)
    declared = set(COMPOSE["secrets"])
    used = {s for service in COMPOSE["services"].values() for s in service.get("secrets", [])}
    assert used == declared


def test_the_secrets_script_creates_every_secret_file(tmp_path):
    subprocess.run(["sh", str(REPO / "deploy" / "compose" / "make-secrets.sh"), str(tmp_path / "secrets")],
                   check=True, capture_output=True)
    for secret in COMPOSE["secrets"].values():
        created = tmp_path / "secrets" / Path(secret["file"]).name
        assert created.read_text().strip(), secret
        assert Path(secret["file"]).parent == Path("./deploy/compose/secrets")
    password = (tmp_path / "secrets" / "mongodb_password").read_text().strip()
    assert f"iotcloud:{password}@mongo:27017" in (tmp_path / "secrets" / "mongodb_uri").read_text()
    assert oct((tmp_path / "secrets").stat().st_mode & 0o777) == "0o700"
    assert "deploy/compose/secrets/" in (REPO / ".gitignore").read_text()


def test_published_ports_and_healthchecks_match_the_settings():
    services = COMPOSE["services"]
    api = settings_of(services["api"])
    assert services["api"]["ports"] == [f"{api.api_https_port}:{api.api_https_port}"]
    assert api.api_host == "0.0.0.0" and api.api_https_port == 8443
    assert services["api"]["healthcheck"]["test"][-1] == f"http://127.0.0.1:{api.api_port}/healthz"
    broker = settings_of(services["init"])  # init writes the broker's listeners from its settings
    assert [p.split("#")[0].strip() for p in services["rabbitmq"]["ports"]] == [
        f"{broker.mqtt_port}:{broker.mqtt_port}", f"{broker.amqp_port}:{broker.amqp_port}"]
    for name, process in (("projector", "projector"), ("gateway", "gateway"), ("broker-auth", "broker_auth"),
                          ("signer", "signer")):
        port = getattr(settings_of(services[name]), f"{process}_metrics_port")
        assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/(healthz|readyz)", services[name]["healthcheck"]["test"][-1])


def test_start_order_waits_for_health_and_for_init():
    services = COMPOSE["services"]
    for name, service in services.items():
        assert "healthcheck" in service or service.get("restart") == "no", f"{name} has no healthcheck"
        for target, condition in service.get("depends_on", {}).items():
            assert target in services, (name, target)
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[target], (name, target)
            else:
                assert condition["condition"] == "service_completed_successfully" and target == "init"
    assert services["broker-auth"]["network_mode"] == "service:rabbitmq"


def test_volumes_are_declared_and_every_subpath_is_one_init_writes(tmp_path):
    services, declared = COMPOSE["services"], set(COMPOSE["volumes"])
    used, subpaths = set(), set()
    for service in services.values():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source = volume.split(":")[0]
            else:
                source = volume["source"]
                if "volume" in volume:
                    subpaths.add(volume["volume"]["subpath"])
                    assert volume["target"] == f"/var/lib/iotcloud/{volume['volume']['subpath']}"
            used.add(source)
    assert used == declared
    # What init writes (its command, on SQLite here), at the paths the other services mount.
    init = services["init"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "IOTCLOUD_"))},
           **{k: str(v) for k, v in init["environment"].items() if not k.startswith(("POSTGRES_", "PERSISTENCE"))},
           "IOTCLOUD_STATE_DIR": str(tmp_path), "IOTCLOUD_BROKER_SERVICE_DIR": str(tmp_path / "broker" / "services"),
           "IOTCLOUD_MONGODB_URI_FILE": "", "IOTCLOUD_POSTGRES_PASSWORD_FILE": ""}
    subprocess.run([sys.executable, "-m", "iotcloud.cli", *init["command"]], env=env, check=True, capture_output=True)
    for subpath in subpaths:
        assert (tmp_path / subpath).is_dir(), subpath
    assert (tmp_path / "pki" / "api" / "cert.pem").exists() and (tmp_path / "keys" / "token-signing.pem").exists()
    for service in ("iotcloud-api", "iotcloud-gateway"):
        assert {"ca.pem", "cert.pem", "key.pem"} <= {p.name for p in (tmp_path / "broker" / "services" / service).iterdir()}
    conf = (tmp_path / "broker" / "rabbitmq.conf").read_text()
    rabbitmq_env = services["rabbitmq"]["environment"]
    assert rabbitmq_env["RABBITMQ_CONFIG_FILE"] == "/var/lib/iotcloud/broker/rabbitmq.conf"
    assert "load_definitions = " in conf and "listeners.ssl.default = 0.0.0.0:5671" in conf
    definitions = json.loads((tmp_path / "broker" / "definitions.json").read_text())
    assert {u["name"] for u in definitions["users"]} == {"iotcloud-api", "iotcloud-gateway", "iotcloud-notifier"}
    assert all(u["password_hash"] == "" for u in definitions["users"])  # certificates only


def test_platform_containers_are_locked_down():
    for name, service in platform_services().items():
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_the_dockerfile_passes_hadolint_and_runs_as_the_unprivileged_user():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.M).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base  # a pinned version, never `latest`
    assert len(re.findall(r"^FROM \$\{PYTHON_IMAGE\} AS \w+$", dockerfile, re.M)) == 2  # multi-stage
    assert re.findall(r"^USER (\S+)$", dockerfile, re.M) == ["999:999"]
    assert COMPOSE["services"]["rabbitmq"]["user"] == "999:999"  # reads the files init wrote as 999
    assert "ENV PATH=/opt/iotcloud/bin:$PATH" in dockerfile and "IOTCLOUD_STATE_DIR=/var/lib/iotcloud" in dockerfile
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".state", "tests"} <= set(ignored)


@pytest.mark.parametrize("service", ["postgres", "mongo", "rabbitmq"])
def test_third_party_images_are_pinned_versions(service):
    image = COMPOSE["services"][service]["image"]
    assert re.fullmatch(r"[a-z]+:\d+\.\d+(\.\d+)?(-\w+)?", image), image  # a version, not `latest`
