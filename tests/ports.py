"""Free loopback ports for the servers tests and benchmarks start: the one picker they all share.

Binding port 0 hands out a port from the kernel's ephemeral range, the very range outgoing connections
take their local ports from; between the pick and the server's own bind, a client socket of anything
on the machine can take that port ("Address already in use"). These ports come from outside that range,
are checked to bind right now, and are never handed out twice by one process.
"""

from __future__ import annotations

import os
import random
import socket
import threading

LINUX_EPHEMERAL = (32768, 60999)  # the kernel's default, when /proc cannot say
LOWEST = 10000                    # below this live well-known services (PostgreSQL, RabbitMQ, MQTT, 8443...)
# Ports that services of this machine listen on by default above LOWEST: RabbitMQ's distribution
# port (AMQP + 20000) and nx-27017 / MongoDB.
AVOID = frozenset({25672, 27017})

_given: set[int] = set()
_lock = threading.Lock()
# Its own source of randomness: seeded from the OS in every process, and no test's random.seed() touches it.
_random = random.SystemRandom()


def ephemeral_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    try:
        with open(path) as f:
            low, high = (int(value) for value in f.read().split())
        return low, high
    except (OSError, ValueError):
        return LINUX_EPHEMERAL


def candidate_ranges() -> list[range]:
    """The port ranges outside the ephemeral one, largest first (above 65535 there is nothing)."""
    low, high = ephemeral_range()
    ranges = [range(LOWEST, min(low, 65536)), range(max(high + 1, LOWEST), 65536)]
    ranges = [r for r in ranges if len(r) > 0]
    if not ranges:  # the ephemeral range covers everything above LOWEST: take what is left below it
        ranges = [range(1024, LOWEST)]
    return sorted(ranges, key=len, reverse=True)


def worker_slice() -> tuple[int, int]:
    """(index, count) of this pytest-xdist worker, (0, 1) outside one. A worker takes only ports equal to
    its index modulo the count: random picks of two workers of one run collide often enough over a whole
    suite (a broker whose distribution port the other worker's server had just taken, once in a run)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    try:
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    except ValueError:
        count = 1
    if count > 1 and worker.startswith("gw") and worker[2:].isdigit():
        return int(worker[2:]) % count, count
    return 0, 1


def _binds(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` distinct ports outside the ephemeral range that bind on 127.0.0.1 now.

    Random picks keep concurrent test runs (other sessions on the machine) apart; xdist workers of one
    run pick from disjoint slices."""
    ranges = candidate_ranges()
    weights = [len(r) for r in ranges]
    index, workers = worker_slice()
    ports: list[int] = []
    with _lock:
        for _ in range(20000):
            if len(ports) == count:
                return ports
            port = _random.choice(_random.choices(ranges, weights)[0])
            if port % workers != index or port in _given or port in AVOID or not _binds(port):
                continue
            _given.add(port)
            ports.append(port)
    raise RuntimeError(f"no {count} free loopback ports outside the ephemeral range {ephemeral_range()}")


def free_port() -> int:
    return free_ports(1)[0]

