"""`iotcloud run` serves the API over HTTPS with the platform CA's certificate (and plain HTTP on
loopback), sends security headers, exposes Prometheus metrics on every process, and a SIGTERM lets
in-flight requests finish."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import stop_process
from tests.ports import free_port
from tests.e2e.launch import start_platform

pytestmark = pytest.mark.e2e
SECURE = {"content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("https")
    process, env = start_platform(root, {})
    yield {"env": env, "root": root, "process": process, "ca": root / "state" / "pki" / "ca.pem"}
    stop_process(process, 60)


def get(url: str, context: ssl.SSLContext | None = None, method: str = "GET", body: dict | None = None):
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read().decode()


def test_https_verifies_with_the_platform_ca_and_sends_hsts_and_secure_headers(platform):
    port = platform["env"]["IOTCLOUD_API_HTTPS_PORT"]
    trusting_ca = ssl.create_default_context(cafile=str(platform["ca"]))
    for host in ("127.0.0.1", "localhost"):  # both names are in the certificate: hostname checking stays on
        status, headers, body = get(f"https://{host}:{port}/healthz", trusting_ca)
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert SECURE <= set(headers)
        assert headers["strict-transport-security"].startswith("max-age=31536000")
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
    # The same curl the README shows.
    curl = subprocess.run(["curl", "-sS", "--cacert", str(platform["ca"]), f"https://127.0.0.1:{port}/healthz"],
                          capture_output=True, text=True, timeout=30)
    assert curl.returncode == 0 and json.loads(curl.stdout) == {"status": "ok"}, curl.stderr
    # A client that trusts only the system's roots refuses the platform's certificate.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        get(f"https://127.0.0.1:{port}/healthz", ssl.create_default_context())


def test_plain_http_still_answers_on_loopback_without_hsts(platform):
    port = platform["env"]["IOTCLOUD_API_PORT"]
    status, headers, body = get(f"http://127.0.0.1:{port}/readyz")
    assert status == 200 and json.loads(body) == {"status": "ready"}
    assert SECURE <= set(headers) and "strict-transport-security" not in headers
    # A client header cannot claim TLS on the plain listener.
    request = urllib.request.Request(f"http://127.0.0.1:{port}/readyz", headers={"X-Forwarded-Ssl": "on"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert "strict-transport-security" not in {k.lower() for k in answer.headers}


def test_a_plain_http_request_to_the_https_port_gets_no_answer(platform):
    port = platform["env"]["IOTCLOUD_API_HTTPS_PORT"]
    with pytest.raises((urllib.error.URLError, ConnectionError, http_client_error())):
        get(f"http://127.0.0.1:{port}/healthz")
    assert get(f"https://127.0.0.1:{port}/healthz", ssl.create_default_context(cafile=str(platform["ca"])))[0] == 200


def http_client_error():
    import http.client
    return http.client.HTTPException


def test_api_metrics_label_routes_by_template_not_by_path(platform):
    base = f"http://127.0.0.1:{platform['env']['IOTCLOUD_API_PORT']}"
    for name in ("kitchen", "garage", "a" * 40):
        assert get(f"{base}/v1/devices/{name}")[0] == 401
    assert get(f"{base}/no/such/{time.monotonic()}")[0] == 404
    status, headers, text = get(f"{base}/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    routes = set(re.findall(r'iotcloud_http_requests_total\{method="GET",route="([^"]*)"', text))
    assert "/v1/devices/{name}" in routes and "unmatched" in routes
    assert not any("kitchen" in route or "/no/such" in route for route in routes)
    count = re.search(r'iotcloud_http_requests_total\{method="GET",route="/v1/devices/\{name\}",status="4xx"\} (\S+)', text)
    assert float(count.group(1)) == 3
    assert 'iotcloud_http_request_duration_seconds_bucket{le="0.001",method="GET",route="/v1/devices/{name}"}' in text


def test_every_other_process_serves_metrics_health_and_readiness(platform):
    env = platform["env"]
    texts = {}
    for process in ("PROJECTOR", "GATEWAY", "BROKER_AUTH", "SIGNER"):
        base = f"http://127.0.0.1:{env[f'IOTCLOUD_{process}_METRICS_PORT']}"
        assert get(f"{base}/healthz")[0] == 200
        deadline = time.monotonic() + 30
        while get(f"{base}/readyz")[0] != 200:  # the gateway is ready once it holds its broker link
            assert time.monotonic() < deadline, f"{process} never became ready"
            time.sleep(0.2)
        status, _, texts[process] = get(f"{base}/metrics")
        assert status == 200 and "process_cpu_seconds_total" in texts[process]
    assert 'iotcloud_projection_lag_events{projection="device_list",source="DeviceFleet"}' in texts["PROJECTOR"]
    assert "iotcloud_broker_link_up 1.0" in texts["GATEWAY"]
    assert "iotcloud_broker_connections" in texts["GATEWAY"]
    # Event-store writes are timed where they happen: a sign-up through the API is one Accounts commit.
    api = f"http://127.0.0.1:{env['IOTCLOUD_API_PORT']}"
    assert get(f"{api}/v1/auth/signup", method="POST", body={
        "username": "metrics", "password": "correct horse", "email": "metrics@example.com",
        "given_name": "M", "family_name": "Etrics"})[0] == 201
    written = re.search(r'iotcloud_event_store_write_seconds_count\{application="Accounts"\} (\S+)', get(f"{api}/metrics")[2])
    assert float(written.group(1)) >= 1


def test_sigterm_lets_an_in_flight_request_finish(platform):
    """A sign-up waits (up to IOTCLOUD_PROJECTION_WAIT, 2 s) for its read model; with the projector
    paused it is in flight for those 2 s. SIGTERM to the API then: the answer still arrives, 201."""
    env, root = platform["env"], platform["root"]
    banner = (root / "platform.log").read_text()
    projector = int(re.search(r"projector \[pid (\d+)\]", banner).group(1))
    api = int(re.findall(r"api \[pid (\d+)\]", banner)[-1])
    accounts = root / "state" / "accounts.events.sqlite3"
    before = sqlite3.connect(accounts).execute("SELECT count(*) FROM stored_events").fetchone()[0]
    answers = []
    os.kill(projector, signal.SIGSTOP)
    try:
        caller = threading.Thread(target=lambda: answers.append(get(
            f"http://127.0.0.1:{env['IOTCLOUD_API_PORT']}/v1/auth/signup", method="POST", body={
                "username": "draining", "password": "correct horse", "email": "draining@example.com",
                "given_name": "D", "family_name": "Rain"})))
        caller.start()
        deadline = time.monotonic() + 20
        while sqlite3.connect(accounts).execute("SELECT count(*) FROM stored_events").fetchone()[0] == before:
            assert time.monotonic() < deadline, "the sign-up was never recorded"
            time.sleep(0.02)
        os.kill(api, signal.SIGTERM)  # the request now waits for the paused projector
        caller.join(30)
    finally:
        os.kill(projector, signal.SIGCONT)
    assert answers and answers[0][0] == 201, answers
    assert answers[0][1].get("x-read-model") == "lagging"
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{api}") and "Z" not in open(f"/proc/{api}/stat").read().split()[2]:
        assert time.monotonic() < deadline, "the API did not stop after SIGTERM"
        time.sleep(0.1)


def other_ca_certificate(folder) -> tuple[str, str, str]:
    """A CA and a server certificate for localhost from it: a certificate 'you bring'."""
    now = __import__("datetime").datetime.now(__import__("datetime").timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "your own CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + __import__("datetime").timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.example")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + __import__("datetime").timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [folder / "your-ca.pem", folder / "your-cert.pem", folder / "your-key.pem"]
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return tuple(str(p) for p in paths)


def test_your_own_certificate_is_served_instead_of_the_platform_ones(tmp_path):
    ca, cert, key = other_ca_certificate(tmp_path)
    process, env = start_platform(tmp_path, {"IOTCLOUD_BROKER": "none", "IOTCLOUD_TLS_CERT_FILE": cert,
                                             "IOTCLOUD_TLS_KEY_FILE": key})
    try:
        url = f"https://localhost:{env['IOTCLOUD_API_HTTPS_PORT']}/healthz"
        assert get(url, ssl.create_default_context(cafile=ca))[0] == 200
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            get(url, ssl.create_default_context(cafile=str(tmp_path / "state" / "pki" / "ca.pem")))
        assert not (tmp_path / "state" / "pki" / "api").exists()
    finally:
        stop_process(process, 60)


def test_several_api_workers_share_their_metrics(tmp_path):
    """With two gunicorn workers each keeps its own counters; /metrics sums every worker's files
    (prometheus_client's multiprocess mode), whichever worker answers the scrape."""
    process, env = start_platform(tmp_path, {"IOTCLOUD_BROKER": "none", "IOTCLOUD_API_WORKERS": "2"})
    try:
        base = f"http://127.0.0.1:{env['IOTCLOUD_API_PORT']}"
        folder = tmp_path / "state" / "metrics" / "api"

        def workers_counted() -> int:  # one set of files per worker pid that has answered
            return len({f.name.rsplit("_", 1)[-1] for f in folder.glob("*.db")})
        sent, deadline = 0, time.monotonic() + 60
        # The second worker may still be booting when the first answers: ask until both have answered.
        while sent < 40 or workers_counted() < 2:
            assert time.monotonic() < deadline, f"only {workers_counted()} worker answered {sent} requests"
            assert get(f"{base}/v1/devices/kitchen")[0] == 401  # a new connection each: either worker
            sent += 1
        counted = set()
        for _ in range(5):
            text = get(f"{base}/metrics")[2]
            found = re.search(r'iotcloud_http_requests_total\{method="GET",route="/v1/devices/\{name\}",status="4xx"\} (\S+)', text)
            counted.add(float(found.group(1)))
        assert counted == {float(sent)}, (counted, sent)
    finally:
        stop_process(process, 60)


@pytest.mark.parametrize("child", ["projector", "gateway", "broker auth", "signer"])
def test_every_process_stops_cleanly_on_sigterm(platform, child):
    """SIGTERM makes each process finish its step, close its connections (and lease) and exit 0;
    the supervisor then reports a clean exit (and starts it again, as after any exit)."""
    log = platform["root"] / "platform.log"
    pid = int(re.findall(rf"{child} \[pid (\d+)\]", log.read_text())[-1])
    restarted = re.findall(rf'"{child} restarted \(pid (\d+)\)"', log.read_text())
    if restarted:
        pid = int(restarted[-1])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while f"{child} (pid {pid}) exited with code 0" not in log.read_text():
        assert time.monotonic() < deadline, f"{child} did not exit cleanly:\n{log.read_text()[-2000:]}"
        time.sleep(0.1)


def port_answers(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:
        return False


def test_the_probe_command_containers_use_for_healthchecks(platform):
    env = platform["env"]
    deadline = time.monotonic() + 60  # an earlier test stopped the API: the supervisor starts it again
    while not port_answers(f"http://127.0.0.1:{env['IOTCLOUD_API_PORT']}/healthz"):
        assert time.monotonic() < deadline, "the API is not back"
        time.sleep(0.2)

    def probe(*args):
        return subprocess.run([sys.executable, "-m", "iotcloud.cli", "probe", *args], env=env,
                              capture_output=True, text=True, timeout=30).returncode
    assert probe(f"http://127.0.0.1:{env['IOTCLOUD_API_PORT']}/healthz") == 0
    assert probe(f"https://localhost:{env['IOTCLOUD_API_HTTPS_PORT']}/healthz", "--cacert", str(platform["ca"])) == 0
    assert probe(f"https://localhost:{env['IOTCLOUD_API_HTTPS_PORT']}/healthz") == 1  # system roots: untrusted
    assert probe(f"http://127.0.0.1:{env['IOTCLOUD_API_PORT']}/v1/me") == 1  # 401 is not healthy
    assert probe(f"http://127.0.0.1:{free_port()}/healthz") == 1  # nothing listens
