"""The HTTP auth backend as RabbitMQ sees it: form posts in, `allow`/`deny` text out, never an error."""

import time
import urllib.request
from urllib.parse import urlencode

import pytest
from falcon import testing

from gateways.broker import AdminCredentials, AuthBackendServer, InMemoryDeviceDirectory, create_auth_app

DEV = "dev-a1"


class ExplodingDirectory:
    def is_registered(self, device_id):
        raise RuntimeError("read model down")


@pytest.fixture
def client():
    app = create_auth_app(InMemoryDeviceDirectory([DEV]), ["iotcloud-gateway"],
                          admin=AdminCredentials("iotcloud-admin", "pw"))
    return testing.TestClient(app)


def post(client, path, **fields):
    result = client.simulate_post(f"/auth/{path}", body=urlencode(fields),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert result.status_code == 200
    return result.text


def test_the_requests_rabbitmq_310_sends_for_an_mqtt_device(client):
    # Field names as captured from the 3.10.8 node (see the broker README section of the report).
    assert post(client, "user", username=DEV) == "allow"
    assert post(client, "vhost", username=DEV, vhost="/", ip="127.0.0.1", tags="", client_id=DEV) == "allow"
    assert post(client, "resource", username=DEV, vhost="/", resource="queue", name=f"mqtt-subscription-{DEV}qos1",
                permission="configure", tags="", client_id=DEV) == "allow"
    assert post(client, "topic", username=DEV, vhost="/", resource="topic", name="amq.topic", permission="read",
                tags="", routing_key=f"{DEV}.#", **{"variable_map.client_id": DEV, "variable_map.username": DEV,
                                                    "variable_map.vhost": "/"}) == "allow"


def test_client_id_takeover_is_refused_at_connection_open(client):
    assert post(client, "vhost", username=DEV, vhost="/", ip="127.0.0.1", tags="", client_id="dev-b2") == "deny"


def test_admin_password_login(client):
    assert post(client, "user", username="iotcloud-admin", password="pw") == "allow administrator"
    assert post(client, "user", username="iotcloud-admin", password="no") == "deny"


@pytest.mark.parametrize("body", [
    b"", b"\xff\xfe", b"username", b"username=a&username=b", b"vhost=/", b"=&=&&&", b"x" * 10000,
    b"&".join(b"k%d=v" % i for i in range(100)), b"username=%ZZ",
])
@pytest.mark.parametrize("path", ["user", "vhost", "resource", "topic", "nowhere"])
def test_odd_input_is_denied_never_an_error(client, body, path):
    result = client.simulate_post(f"/auth/{path}", body=body,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert result.status_code in (200, 404)
    if result.status_code == 200:
        assert result.text == "deny"


def test_topic_path_with_a_non_topic_resource_is_denied(client):
    assert post(client, "topic", username=DEV, vhost="/", resource="queue", name="amq.topic", permission="read",
                routing_key=f"{DEV}.#") == "deny"


def test_a_failing_directory_means_deny():
    client = testing.TestClient(create_auth_app(ExplodingDirectory()))
    assert post(client, "user", username=DEV) == "deny"
    assert post(client, "vhost", username=DEV, vhost="/") == "deny"


def test_served_on_a_loopback_port_fast_enough():
    server = AuthBackendServer(create_auth_app(InMemoryDeviceDirectory([DEV]))).start()
    try:
        body = urlencode({"username": DEV}).encode()
        timings = []
        for _ in range(200):
            started = time.perf_counter()
            with urllib.request.urlopen(f"{server.url}/auth/user", data=body, timeout=5) as response:
                assert response.read() == b"allow"
            timings.append(time.perf_counter() - started)
        timings.sort()
        assert timings[len(timings) // 2] < 0.01  # median well under 10 ms per check
    finally:
        server.stop()
