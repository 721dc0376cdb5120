"""The ops listener (/metrics, /healthz, /readyz) of a background process: a port already taken
must cost the process its metrics, never the process itself."""

from __future__ import annotations

import logging
import socket
import urllib.request

from iotcloud.ops_server import OpsServer
from tests.ports import free_port


def test_a_taken_port_is_logged_and_the_process_goes_on(caplog):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with caplog.at_level(logging.WARNING, logger="iotcloud"):
            server = OpsServer("127.0.0.1", taken.getsockname()[1], "projector")
        assert server.port is None
        record = next(r for r in caplog.records if "no metrics listener" in r.getMessage())
        assert record.service == "projector"
    finally:
        taken.close()


def test_a_free_port_answers_health_probes():
    server = OpsServer("127.0.0.1", free_port(), "projector")
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as answer:
        assert answer.status == 200
