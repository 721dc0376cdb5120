"""The HTTP auth backend as RabbitMQ sees it: form posts in, `allow`/`deny` text out, never an error."""

import http.client
import ssl
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from falcon import testing

from gateways.broker import (AdminCredentials, AuthBackendIdentity, AuthBackendServer, InMemoryDeviceDirectory,
                             create_auth_app)

DEV = "a1" * 20  # a device id: 40 lowercase hex (commands.domain.device_ids)
SECRET = "s3cret-path-token"


class ExplodingDirectory:
    def is_registered(self, device_id):
        raise RuntimeError("read model down")


@pytest.fixture
def client():
    app = create_auth_app(InMemoryDeviceDirectory([DEV]), ["iotcloud-gateway"], secret=SECRET,
                          admin=AdminCredentials("iotcloud-admin", "pw"))
    return testing.TestClient(app)


def post(client, path, **fields):
    result = client.simulate_post(f"/{SECRET}/auth/{path}", body=urlencode(fields),
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
    assert post(client, "vhost", username=DEV, vhost="/", ip="127.0.0.1", tags="", client_id="b2" * 20) == "deny"


def test_an_empty_password_is_never_a_certificate_login(client):
    # PLAIN may send an empty password; only the absence of the field means a certificate (EXTERNAL, MQTT).
    assert post(client, "user", username=DEV) == "allow"
    assert post(client, "user", username=DEV, password="") == "deny"
    assert post(client, "user", username="iotcloud-gateway", password="") == "deny"


def test_a_password_device_logs_in_with_its_password_only():
    from commands.broker_passwords import new_broker_password
    password, password_hash = new_broker_password()
    directory = InMemoryDeviceDirectory([DEV])
    directory.register("b2" * 20, password_hash)
    client = testing.TestClient(create_auth_app(directory, ["iotcloud-gateway"], secret=SECRET))
    assert post(client, "user", username="b2" * 20, password=password) == "allow"
    wrong = ("y" if password[0] == "x" else "x") + password[1:]  # always a different first character
    assert post(client, "user", username="b2" * 20, password=wrong) == "deny"
    assert post(client, "user", username=DEV, password=password) == "deny"  # a certificate device
    directory.unregister("b2" * 20)
    assert post(client, "user", username="b2" * 20, password=password) == "deny"


def test_admin_password_login(client):
    assert post(client, "user", username="iotcloud-admin", password="pw") == "allow administrator"
    assert post(client, "user", username="iotcloud-admin", password="no") == "deny"


@pytest.mark.parametrize("body", [
    b"", b"\xff\xfe", b"username", b"username=a&username=b", b"vhost=/", b"=&=&&&", b"x" * 10000,
    b"&".join(b"k%d=v" % i for i in range(100)), b"username=%ZZ",
])
@pytest.mark.parametrize("path", ["user", "vhost", "resource", "topic", "nowhere"])
def test_odd_input_is_denied_never_an_error(client, body, path):
    result = client.simulate_post(f"/{SECRET}/auth/{path}", body=body,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert result.status_code in (200, 404)
    if result.status_code == 200:
        assert result.text == "deny"


def test_topic_path_with_a_non_topic_resource_is_denied(client):
    assert post(client, "topic", username=DEV, vhost="/", resource="queue", name="amq.topic", permission="read",
                routing_key=f"{DEV}.#") == "deny"


def test_a_failing_directory_means_deny():
    client = testing.TestClient(create_auth_app(ExplodingDirectory(), secret=SECRET))
    assert post(client, "user", username=DEV) == "deny"
    assert post(client, "vhost", username=DEV, vhost="/") == "deny"


@pytest.mark.parametrize("path", ["/auth/user", f"/{SECRET[:-1]}/auth/user", f"/{SECRET}x/auth/user",
                                  f"/x/{SECRET}/auth/user"])
def test_a_caller_without_the_brokers_secret_is_refused(client, path):
    result = client.simulate_post(path, body=urlencode({"username": DEV}),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert result.status_code in (403, 404) and result.text != "allow"


@pytest.fixture
def served(tmp_path):
    identity = AuthBackendIdentity.load_or_create(tmp_path)
    server = AuthBackendServer(create_auth_app(InMemoryDeviceDirectory([DEV]), secret=identity.secret), identity)
    with server:
        yield server, identity


def pinned(identity) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(identity.ca_file))


def test_served_over_https_with_the_pinned_certificate_only(served, tmp_path):
    server, identity = served
    body = urlencode({"username": DEV}).encode()
    with urllib.request.urlopen(f"{server.url}/auth/user", data=body, timeout=5, context=pinned(identity)) as answer:
        assert answer.read() == b"allow"
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP gets no answer
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/{identity.secret}/auth/user", data=body, timeout=5)
    with pytest.raises(urllib.error.URLError):  # another backend's certificate is not the pinned one
        other = AuthBackendIdentity.load_or_create(tmp_path / "other")
        urllib.request.urlopen(f"{server.url}/auth/user", data=body, timeout=5, context=pinned(other))
    assert identity.key_file.stat().st_mode & 0o077 == 0 and (tmp_path / "auth-backend").stat().st_mode & 0o077 == 0


@pytest.mark.serial
def test_served_on_a_loopback_port_fast_enough(served):
    """Over one kept-alive connection, as RabbitMQ's httpc asks: no TLS handshake per question."""
    server, identity = served
    connection = http.client.HTTPSConnection("localhost", server.port, timeout=5, context=pinned(identity))
    body = urlencode({"username": DEV})
    timings = []
    for _ in range(200):
        started = time.perf_counter()
        connection.request("POST", f"/{identity.secret}/auth/user", body=body,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = connection.getresponse()
        assert response.read() == b"allow"
        timings.append(time.perf_counter() - started)
    connection.close()
    timings.sort()
    print(f"\nbroker auth question over HTTPS keep-alive: p50 {timings[100] * 1000:.2f} ms")
    assert timings[len(timings) // 2] < 0.01  # median well under 10 ms per check


def _ask(connection: http.client.HTTPSConnection, identity) -> bytes:
    connection.request("POST", f"/{identity.secret}/auth/user", body=urlencode({"username": DEV}),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    return connection.getresponse().read()


@pytest.mark.serial
def test_kept_alive_connections_beyond_the_pool_do_not_hold_up_questions(served):
    """RabbitMQ's httpc keeps a connection open per question it ever had in flight at once; in a connect
    storm that is more connections than the pool has threads. When each idle kept-alive connection held a
    thread, the handshake of the next one waited for a thread (5 s) and the broker's login timed out."""
    from gateways.broker.auth_server import WORKERS
    server, identity = served
    connections = []
    started = time.monotonic()
    for _ in range(WORKERS * 3):  # each asks once, then stays open and idle
        connection = http.client.HTTPSConnection("localhost", server.port, timeout=2, context=pinned(identity))
        assert _ask(connection, identity) == b"allow"
        connections.append(connection)
    assert all(_ask(c, identity) == b"allow" for c in connections)  # kept alive: they answer again
    elapsed = time.monotonic() - started
    for connection in connections:
        connection.close()
    assert elapsed < 5.0, f"{len(connections)} kept-alive connections took {elapsed:.1f} s"
