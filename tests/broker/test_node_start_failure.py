"""A node that cannot boot says why at once, instead of waiting out its start timeout with "(no log)"."""

from __future__ import annotations

import socket
import uuid

import pytest

from gateways.broker import BrokerPorts, BrokerStartError, PrivateBrokerNode
from tests.ports import free_ports

pytestmark = pytest.mark.broker


def test_a_taken_distribution_port_is_named_in_the_start_error(broker_ca, tmp_path):
    state = tmp_path / "broker"
    mqtts, amqps, management, dist, epmd = free_ports(5)
    node = PrivateBrokerNode(state, broker_ca, auth_backend_url="http://127.0.0.1:9/",
                             ports=BrokerPorts(mqtts=mqtts, amqps=amqps, management=management, dist=dist, epmd=epmd),
                             node_name=f"iotcloud-taken-{uuid.uuid4().hex[:8]}")
    errors = []
    with socket.socket() as squatter:  # not an Erlang node: RabbitMQ's prelaunch refuses to share the port
        squatter.bind(("127.0.0.1", dist))
        squatter.listen()
        try:
            for _ in range(2):  # the second start's dump is its own; the first one's is kept aside
                with pytest.raises(BrokerStartError) as refused:
                    node.start()
                errors.append(str(refused.value))
        finally:
            node.stop()
    for error in errors:
        assert "the Erlang VM stopped" in error
        assert f"dist_port_already_used,{dist}" in error
    assert (state / "erl_crash.dump").exists() and (state / "erl_crash.dump.previous").exists()
