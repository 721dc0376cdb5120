"""Presence and revocation probes: the device-list read model read straight from the read store (what
GET /v1/devices serves, without a REST page walk over 10,000 devices), and one device connected by the
benchmark itself so that the moment the platform closes its connection is seen by the device."""

from __future__ import annotations

import ssl
import threading
import time

import paho.mqtt.client as mqtt
from pymongo import MongoClient

from iotcloud.config import Settings
from queries.read_models import DEVICE_LIST, ReadModelCatalogue
from simulators.credentials import Credentials


class DeviceListWatch:
    def __init__(self, platform_env: dict):
        settings = Settings.from_env(platform_env)
        self._client = MongoClient(settings.effective_mongodb_uri, serverSelectionTimeoutMS=5000, tz_aware=True)
        self._catalogue = ReadModelCatalogue(self._client[settings.mongodb_database])

    def online(self) -> int:
        return self._catalogue.collection(DEVICE_LIST).count_documents({"connection": "online"})

    def wait_online(self, expected: int, timeout: float, say=None, report_every: float = 5.0) -> tuple[int, float]:
        started = last = time.monotonic()
        online = self.online()
        while online < expected and time.monotonic() - started < timeout:
            time.sleep(0.2)
            online = self.online()
            if say and time.monotonic() - last >= report_every:
                last = time.monotonic()
                say(f"  read model: {online}/{expected} online after {last - started:.0f} s")
        return online, time.monotonic() - started

    def until(self, device_ids: list[str], connection: str, since: float, timeout: float) -> dict:
        """Polls every 20 ms until each device shows `connection`; seconds from `since` (monotonic) per device."""
        seen: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        collection = self._catalogue.collection(DEVICE_LIST)
        while len(seen) < len(device_ids) and time.monotonic() < deadline:
            now = time.monotonic()
            for doc in collection.find({"device_id": {"$in": [d for d in device_ids if d not in seen]},
                                        "connection": connection}, {"device_id": 1}):
                seen[doc["device_id"]] = now - since
            time.sleep(0.02)
        times = sorted(seen.values())
        return {"devices": len(device_ids), "reached": len(seen),
                "first_s": round(times[0], 3) if times else None,
                "median_s": round(times[len(times) // 2], 3) if times else None,
                "last_s": round(times[-1], 3) if times else None}

    def close(self) -> None:
        self._client.close()


class ProbeDevice:
    """One device on a paho client of its own (own network thread): records when the broker drops it."""

    def __init__(self, creds: Credentials):
        self.creds = creds
        self.connected = threading.Event()
        self.closed_at: float | None = None
        self.client = self._client(self._on_disconnect)

    def _client(self, on_disconnect) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.creds.device_id, clean_session=False,
                             protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        client.tls_set_context(self.creds.ssl_context())
        client.on_disconnect = on_disconnect
        return client

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()

    def connect(self, timeout: float = 30.0) -> None:
        self.client.on_connect = lambda c, u, f, rc, p: (not rc.is_failure) and self.connected.set()
        self.client.connect(self.creds.host, self.creds.port("mqtt"), keepalive=60)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise TimeoutError(f"probe device {self.creds.device_id} did not connect")

    def wait_closed(self, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while self.closed_at is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.closed_at

    def try_login(self, timeout: float = 10.0) -> str:
        """A fresh login with the same certificate: how the broker answered it."""
        answer: dict[str, str] = {}
        done = threading.Event()

        def on_connect(client, userdata, flags, reason_code, properties):
            answer["how"] = f"CONNACK refused: {reason_code}" if reason_code.is_failure else "ACCEPTED"
            done.set()

        def on_disconnect(client, userdata, flags, reason_code, properties):
            answer.setdefault("how", f"closed before CONNACK ({reason_code})")
            done.set()

        client = self._client(on_disconnect)
        client.on_connect = on_connect
        try:
            client.connect(self.creds.host, self.creds.port("mqtt"), keepalive=60)
        except (ssl.SSLError, OSError) as exc:
            return f"refused at the TLS handshake ({type(exc).__name__}: {str(exc)[:120]})"
        client.loop_start()
        try:
            done.wait(timeout)
        finally:
            client.disconnect()
            client.loop_stop()
        return answer.get("how", "no answer")

    def close(self) -> None:
        try:
            self.client.disconnect()
            self.client.loop_stop()
        except Exception:  # noqa: BLE001 - already closed by the broker
            pass
