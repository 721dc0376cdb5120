"""The device logic of the Node simulator and of the C core, request by request, against
simulators/device.py (the reference device), byte for byte; no broker. The same devices over real
MQTT are in test_sim_integration.py."""

from __future__ import annotations

import json
import subprocess

from sim_helpers import CASES, FIRMWARE, NODE_DIR

from simulators.device import Device, NetworkInfo


def test_node_replies_match_python_byte_for_byte(node_ready):
    """Feed the same requests to the Node and Python device logic (no broker)."""
    dev_id = BYTE_FOR_BYTE_ID
    requests = byte_for_byte_requests()
    script = (
        "const {Device} = require(process.argv[1]);"
        "const d = new Device(process.argv[2], 'r@example.com', () => {});"
        "const reqs = JSON.parse(require('fs').readFileSync(0, 'utf-8'));"
        "process.stdout.write(JSON.stringify(reqs.map(([a, p]) => d.handle(a, Buffer.from(p, 'utf-8')))));"
    )
    out = subprocess.run(["node", "-e", script, str(NODE_DIR / "device.js"), dev_id],
                         input=json.dumps(requests), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    node = json.loads(out.stdout)
    py = Device(dev_id, notification_recipient="r@example.com", display=lambda *a: None)
    for (api, payload), node_pubs in zip(requests, node, strict=True):
        expected = [[p.api, p.payload.decode()] for p in py.handle(api, payload.encode())]
        assert [[p["api"], p["payload"]] for p in node_pubs] == expected, (api, payload)


BYTE_FOR_BYTE_ID = "83f58e3f7e284892f6da7b020e5c982a6ea16dee"


def byte_for_byte_requests() -> list[tuple[str, str]]:
    dev_id = BYTE_FOR_BYTE_ID
    return [(api, json.dumps(req)) for api, req, _ in CASES] + [
        ("write_uart", json.dumps({"value": "caf\u00e9 \u2603 \U0001F600 \x7f \n\t\"q\" \\"})),
        ("write_uart", '{"value": "Hello World", "correlation_id": {"n": [1, 2.5, true, null]}}'),
        ("trigger_notification", json.dumps({"recipient": dev_id, "message": "self"})),
        ("trigger_notification", '{"recipient": "x", "message": "y", "extra": {"a": []}, "correlation_id": -3}'),
        ("get_gpio", '{"number": " 12 "}'), ("get_gpio", '{"number": "1.5"}'), ("get_gpio", "[]"),
        ("get_gpio", "{bad"), ("set_gpio", '{"number": 1, "value": true}'), ("get_gpio", '{"number": 1}'),
        ("set_mac", '{"value": "x"}'), ("get_status", ""), ("set_status", '{"value": "other"}'),
        # Repeated correlation ids: the last eight string ids of up to 64 bytes are not run again.
        *[("write_uart", json.dumps({"value": f"r{n}", "correlation_id": f"rep{n}"})) for n in range(9)],
        ("write_uart", '{"value": "again", "correlation_id": "rep8"}'),
        ("set_gpio", '{"number": 4, "value": 1, "correlation_id": "rep1"}'),
        ("set_gpio", '{"number": 4, "value": 1, "correlation_id": "rep0"}'),
        *[("write_uart", json.dumps({"value": "long", "correlation_id": "\u00e9" * 32 + s})) for s in ("", "", "x", "x")],
        ("trigger_notification", json.dumps({"recipient": dev_id, "message": "self", "correlation_id": "self1"})),
        ("trigger_notification", json.dumps({"recipient": dev_id, "message": "self", "correlation_id": "self1"})),
    ]


def test_firmware_replies_match_python_byte_for_byte(firmware_ready, tmp_path):
    """The C core (firmware/tests/replay.c: one fresh device per request, a fixed board) against
    simulators/device.py with the same board facts; plus a session where GPIO state carries over,
    run through the real device over MQTT by test_mqtt_simulator_answers_every_api[firmware]."""
    replay = FIRMWARE.parent / "replay"
    assert replay.is_file(), "`make test` builds firmware/build/replay"
    net = NetworkInfo(mac="02:00:00:AB:CD:EF", ip="192.168.1.23", subnet="255.255.255.0", gateway="192.168.1.1")
    requests = byte_for_byte_requests() + [("get_mac", "{}"), ("get_ip", "{}"), ("get_subnet", '{"correlation_id": 1}'),
                                           ("get_gateway", "{}"), ("get_rtc", "{}"), ("write_uart", '{"value": "\\u00e9"}'),
                                           ("trigger_notification", '{"a": 1, "b": 2, "a": 3}')]
    files = []
    for i, (api, payload) in enumerate(requests):
        path = tmp_path / f"{i:03d}"
        path.write_bytes(f"{BYTE_FOR_BYTE_ID}/{api}".encode() + b"\0" + payload.encode())
        files.append(str(path))
    out = subprocess.run([str(replay), BYTE_FOR_BYTE_ID, *files], capture_output=True, text=True, timeout=60, check=True)
    lines = out.stdout.splitlines()
    assert len(lines) == len(requests)
    for (api, payload), line in zip(requests, lines, strict=True):
        py = Device(BYTE_FOR_BYTE_ID, notification_recipient="ops@example.com", clock=lambda: 1700000000.9, network=net,
                    display=lambda *a: None)
        expected = [(f"server/{BYTE_FOR_BYTE_ID}/{p.api}", p.payload) for p in py.handle(api, payload.encode())]
        got = [(p.split(" ")[0], bytes.fromhex(p.split(" ")[1])) for p in line.split("\t")[2:]]
        assert got == expected, (api, payload)
