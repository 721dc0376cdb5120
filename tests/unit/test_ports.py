"""The tests' port picker (tests/ports.py): ports that an outgoing connection cannot take first."""

from __future__ import annotations

import socket

from tests.ports import (LOWEST, LINUX_EPHEMERAL, candidate_ranges, ephemeral_range, free_port, free_ports,
                         worker_slice)


def test_ports_are_outside_the_kernels_ephemeral_range_distinct_and_bindable():
    low, high = ephemeral_range()
    ports = free_ports(50) + [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(LOWEST <= port <= 65535 and not low <= port <= high for port in ports)
    for port in ports[:10]:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


def test_without_proc_the_linux_default_range_is_avoided(tmp_path):
    assert ephemeral_range(str(tmp_path / "missing")) == LINUX_EPHEMERAL
    (tmp_path / "garbled").write_text("not a range\n")
    assert ephemeral_range(str(tmp_path / "garbled")) == LINUX_EPHEMERAL


def test_the_candidate_ranges_leave_out_the_whole_ephemeral_range():
    low, high = ephemeral_range()
    assert all(not (set(r) & set(range(low, high + 1))) for r in candidate_ranges())


def test_two_workers_of_one_run_pick_from_disjoint_slices(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    picked = {}
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        picked[worker] = set(free_ports(200))
    assert not picked["gw0"] & picked["gw1"]
    assert {port % 2 for port in picked["gw0"]} == {0} and {port % 2 for port in picked["gw1"]} == {1}


def test_outside_xdist_every_port_is_a_candidate(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert worker_slice() == (0, 1)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "not a number")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    assert worker_slice() == (0, 1)
