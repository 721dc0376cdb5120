from __future__ import annotations

import subprocess

import pytest

from iotcloud.embedded_mongo import nx_command, wait_for_port
from tests.ports import free_port


@pytest.fixture
def own_read_store(tmp_path):
    """An embedded read store of the test's own, started as the platform starts it, its SQLite files
    in tmp_path (`<database>.db`, `<database>.db-wal`): yields its MongoDB URI."""
    port = free_port()
    with open(tmp_path / "out.log", "wb") as out:
        server = subprocess.Popen(nx_command(tmp_path, port, tmp_path / "nx.log", tmp_path / "nx.pid"),
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, 30, server)
        yield f"mongodb://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(10)
