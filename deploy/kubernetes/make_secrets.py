"""Writes the Kubernetes Secrets the manifests mount, from a state directory that `iotcloud
broker-config` filled (the CA, token and code keys, the API's HTTPS certificate, the services'
broker certificates) and the database credentials.

    IOTCLOUD_STATE_DIR=/secure/iotcloud IOTCLOUD_TLS_NAMES=iotcloud.example.com \\
        IOTCLOUD_BROKER_TLS_NAME=rabbitmq.example.internal iotcloud broker-config
    python3 deploy/kubernetes/make_secrets.py /secure/iotcloud secrets.yaml \\
        --postgres-password-file pg.txt --mongodb-uri-file mongo-uri.txt
    kubectl apply -f secrets.yaml && shred -u secrets.yaml

Only the standard library: it runs wherever kubectl does. The output holds private keys: keep it
out of version control and delete it once applied.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
from pathlib import Path

NAMESPACE = "iotcloud"


def secrets(state: Path, postgres_password: bytes, mongodb_uri: bytes) -> dict[str, dict[str, bytes]]:
    services = state / "broker" / "services"
    return {
        "iotcloud-database": {"postgres_password": postgres_password, "mongodb_uri": mongodb_uri},
        "iotcloud-ca": {"ca.pem": (state / "pki" / "ca.pem").read_bytes(), "ca.key": (state / "pki" / "ca.key").read_bytes()},
        "iotcloud-keys": {"token-signing.pem": (state / "keys" / "token-signing.pem").read_bytes(),
                          "code.key": (state / "keys" / "code.key").read_bytes()},
        "iotcloud-api-tls": {"cert.pem": (state / "pki" / "api" / "cert.pem").read_bytes(),
                             "key.pem": (state / "pki" / "api" / "key.pem").read_bytes()},
        **{f"iotcloud-broker-{service}": {name: (services / f"iotcloud-{service}" / name).read_bytes()
                                          for name in ("ca.pem", "cert.pem", "key.pem")}
           for service in ("api", "gateway")},
    }


def manifest(name: str, data: dict[str, bytes]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "iotcloud"}},
            "data": {key: base64.b64encode(value).decode() for key, value in sorted(data.items())}}


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("state", type=Path, help="the state directory iotcloud broker-config wrote")
    cli.add_argument("out", type=Path, help="the YAML file to write (mode 0600)")
    cli.add_argument("--postgres-password-file", type=Path, required=True)
    cli.add_argument("--mongodb-uri-file", type=Path, required=True)
    args = cli.parse_args()
    found = secrets(args.state, args.postgres_password_file.read_bytes().strip(),
                    args.mongodb_uri_file.read_bytes().strip())
    # JSON is YAML: one document per Secret, no YAML library needed.
    text = "".join(f"---\n{json.dumps(manifest(name, data), indent=2)}\n" for name, data in found.items())
    descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    print(f"wrote {len(found)} Secrets to {args.out}: {', '.join(found)}")


if __name__ == "__main__":
    main()
