"""deploy/kubernetes: every manifest (and every overlay applied to it) validates against the
Kubernetes API schema of a pinned version with kubernetes-validate (strict: no unknown fields),
yamllint passes, and the manifests use only commands, settings and Secrets that exist."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from iotcloud.cli import parser
from iotcloud.config import Settings

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"  # the oldest minor version still supported upstream when this was written
PENDING_COMMANDS: set[str] = set()  # see tests/deploy/test_compose.py


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


BASE = {path.name: documents(path) for path in sorted((ROOT / "base").glob("*.yaml"))}
RESOURCES = [d for docs in BASE.values() for d in docs]
DEPLOYMENTS = {d["metadata"]["name"]: d for d in RESOURCES if d["kind"] == "Deployment"}


def validate(resource: dict) -> None:
    kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: f"{r['kind']}/{r['metadata']['name']}")
def test_every_base_manifest_validates(resource):
    validate(resource)


def strategic_merge(base, patch):
    """kubectl's strategic merge for what the overlays patch: maps merge, lists of named items
    (containers) merge by name, anything else is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = strategic_merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(i, dict) and "name" in i for i in patch):
        merged = [copy.deepcopy(i) for i in base]
        for item in patch:
            at = next((n for n, b in enumerate(merged) if b.get("name") == item["name"]), None)
            merged.append(item) if at is None else merged.__setitem__(at, strategic_merge(merged[at], item))
        return merged
    return patch


OVERLAYS = sorted(p for p in (ROOT / "overlays").iterdir() if p.is_dir())


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_every_overlay_applied_to_the_base_validates(overlay):
    config = documents(overlay / "config.yaml")[0]
    validate(config)
    base_config = next(r for r in RESOURCES if r["kind"] == "ConfigMap")
    assert set(config["data"]) == set(base_config["data"]), "an overlay's ConfigMap sets the same keys"
    assert config["metadata"] == base_config["metadata"]
    for patch_file in overlay.glob("*.patch.yaml"):
        kind, _, name = patch_file.name.removesuffix(".patch.yaml").partition("-")
        target = next(r for r in RESOURCES if r["kind"].lower() == kind and r["metadata"]["name"] == name)
        validate(strategic_merge(target, documents(patch_file)[0]))


def test_yamllint_passes():
    result = subprocess.run([sys.executable, "-m", "yamllint", "-s", "-c", str(ROOT / ".yamllint.yaml"),
                             str(ROOT), str(REPO / "docker-compose.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def containers():
    for deployment in DEPLOYMENTS.values():
        yield from ((deployment, c) for c in deployment["spec"]["template"]["spec"]["containers"])
    for job in (r for r in RESOURCES if r["kind"] == "Job"):
        yield from ((job, c) for c in job["spec"]["template"]["spec"]["containers"])


def test_every_container_runs_a_cli_command_with_limits_and_probes_and_no_privileges():
    subparsers = next(a for a in parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for owner, container in containers():
        command = container["args"][0]
        assert command in subparsers.choices or command in PENDING_COMMANDS, command
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and \
               {"cpu", "memory"} <= set(container["resources"]["limits"]), container["name"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
        assert security["capabilities"]["drop"] == ["ALL"]
        assert owner["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        if owner["kind"] == "Deployment":
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", container["name"]
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", container["name"]


def test_every_setting_is_one_the_platform_reads_and_probes_match_its_ports():
    known = {"PERSISTENCE_MODULE", "POSTGRES_DBNAME", "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER"} | {
        f"IOTCLOUD_{f.name.upper()}" for f in fields(Settings) if f.name not in ("postgres", "persistence_module")}
    config = next(r for r in RESOURCES if r["kind"] == "ConfigMap")["data"]
    assert set(config) <= known, set(config) - known
    for owner, container in containers():
        env = {**config, **{e["name"]: e["value"] for e in container.get("env", [])}}
        assert set(env) <= known, set(env) - known
        settings = Settings.from_env(env)
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        probe = container.get("readinessProbe", {}).get("httpGet", {}).get("port")
        process = container["args"][0].replace("-", "_")
        if process == "api":
            assert ports == {"https": settings.api_https_port, "http-probes": settings.api_port}
        elif process in ("gateway", "projector", "signer"):
            assert ports[probe] == getattr(settings, f"{process}_metrics_port")


def test_secrets_are_files_and_make_secrets_provides_every_one(tmp_path):
    state = tmp_path / "state"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "IOTCLOUD_"))},
           "IOTCLOUD_STATE_DIR": str(state), "PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "IOTCLOUD_BROKER_SERVICE_DIR": str(state / "broker" / "services")}
    subprocess.run([sys.executable, "-m", "iotcloud.cli", "broker-config"], env=env, check=True, capture_output=True)
    (tmp_path / "pg").write_text("pg-password\n")
    (tmp_path / "uri").write_text("mongodb://iotcloud:secret@mongo.example.internal/?authSource=admin\n")
    out = tmp_path / "secrets.yaml"
    subprocess.run([sys.executable, str(ROOT / "make_secrets.py"), str(state), str(out), "--postgres-password-file",
                    str(tmp_path / "pg"), "--mongodb-uri-file", str(tmp_path / "uri")], check=True, capture_output=True)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    made = {d["metadata"]["name"]: d for d in documents(out)}
    for secret in made.values():
        validate(secret)
    for owner, container in containers():
        volumes = {v["name"]: v for v in owner["spec"]["template"]["spec"]["volumes"]}
        for env in container.get("env", []):
            assert "valueFrom" not in env, "secrets are files, never environment variables"
        for mount in container.get("volumeMounts", []):
            source = volumes[mount["name"]]
            if "secret" in source:
                assert mount["subPath"] in made[source["secret"]["secretName"]]["data"], mount
                assert mount["readOnly"] is True
    config = next(r for r in RESOURCES if r["kind"] == "ConfigMap")["data"]
    assert not any("PASSWORD" in k and not k.endswith("_FILE") for k in config)


def test_every_deployment_has_a_disruption_budget_and_singletons_are_recreated():
    budgets = {d["metadata"]["name"]: d for d in RESOURCES if d["kind"] == "PodDisruptionBudget"}
    for name, deployment in DEPLOYMENTS.items():
        if deployment["spec"]["replicas"] == 0:
            continue  # a hook for a process that does not exist yet
        assert name in budgets, name
        assert budgets[name]["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    # The processes that take a lease are replaced, not rolled: see docs/scaling.md.
    assert DEPLOYMENTS["gateway"]["spec"]["strategy"]["type"] == "Recreate"
    assert DEPLOYMENTS["projector"]["spec"]["strategy"]["type"] == "Recreate"


def test_network_policies_deny_by_default():
    policies = {d["metadata"]["name"]: d for d in RESOURCES if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert [p["port"] for p in policies["api-ingress"]["spec"]["ingress"][0]["ports"]] == [8443]


def test_the_validation_refuses_what_kubernetes_would():
    broken = copy.deepcopy(DEPLOYMENTS["api"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
