"""moto's standalone server on loopback: the AWS services (SES, SNS, Cognito...) the adapters talk to over HTTP.

Tests use it through boto3 exactly as production uses AWS; what was sent is read back from moto's
`/moto-api/data.json`. Nothing of boto3 is patched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

REGION = "us-east-1"


@dataclass
class MotoServer:
    endpoint: str
    process: subprocess.Popen | None = None

    def environment(self) -> dict[str, str]:
        """The standard boto3 variables that point every client at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

    def data(self) -> dict:
        """Everything moto holds, e.g. data()["ses"]... for the messages SES accepted."""
        with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=10) as answer:
            return json.load(answer)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def start_moto_server(log: Path, port: int | None = None, deadline: float = 30.0) -> MotoServer:
    """Starts `moto_server` on 127.0.0.1 (a fixed port lets a test stop and restart the same endpoint)."""
    port = port or free_port()
    binary = Path(sys.executable).with_name("moto_server")
    with open(log, "ab") as out:
        process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "false"})
    server = MotoServer(f"http://127.0.0.1:{port}", process)
    until = time.monotonic() + deadline
    while True:
        try:
            server.data()
            return server
        except OSError:
            if process.poll() is not None or time.monotonic() > until:
                server.stop()
                raise RuntimeError(f"moto_server did not start on port {port}; see {log}")
            time.sleep(0.1)
