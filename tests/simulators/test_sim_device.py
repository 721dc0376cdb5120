"""Unit tests of the pure device behaviour (simulators.device)."""

from __future__ import annotations

import json
import logging

import pytest

from simulators.device import (
    APIS,
    KEYWORD_MESSAGE,
    Device,
    NetworkInfo,
    Publish,
    dumps,
    host_network_info,
)

DEV = "83f58e3f7e284892f6da7b020e5c982a6ea16dee"
NET = NetworkInfo(mac="AA:BB:CC:DD:EE:FF", ip="10.1.2.3", subnet="255.255.255.0", gateway="10.1.2.1")


@pytest.fixture
def shown():
    return []


@pytest.fixture
def dev(shown):
    return Device(DEV, notification_recipient="owner@example.com", clock=lambda: 1_700_000_000.75, network=NET,
                  display=lambda dev_id, text: shown.append((dev_id, text)))


# Byte-exact seed replies (json.dumps default separators).
@pytest.mark.parametrize(
    "api, request_payload, reply",
    [
        ("get_status", b"{}", b'{"value": "running"}'),
        ("set_status", b'{"value": "restart"}', b'{"value": "restarting"}'),
        ("get_gpio", b'{"number": 3}', b'{"number": 3, "value": 0}'),
        ("set_gpio", b'{"number": 3, "value": 1}', b'{"number": 3, "value": 1}'),
        ("get_rtc", b"{}", b'{"value": 1700000000}'),
        ("set_rtc", b'{"value": 1600000000}', b'{"value": 1600000000}'),
        ("get_mac", b"{}", b'{"value": "AA:BB:CC:DD:EE:FF"}'),
        ("get_ip", b"{}", b'{"value": "10.1.2.3"}'),
        ("get_subnet", b"{}", b'{"value": "255.255.255.0"}'),
        ("get_gateway", b"{}", b'{"value": "10.1.2.1"}'),
        ("write_uart", b'{"value": "hi there"}', b'{"value": "hi there"}'),
        ("trigger_notification", b'{"recipient": "a@b.c", "message": "m"}', b'{"recipient": "a@b.c", "message": "m"}'),
    ],
)
def test_seed_replies_byte_exact(dev, api, request_payload, reply):
    assert dev.reply(api, request_payload) == reply
    assert dev.handle(api, request_payload)[0] == Publish(api, reply)


def test_every_api_is_covered():
    assert APIS == {"get_status", "set_status", "get_gpio", "set_gpio", "get_rtc", "set_rtc", "get_mac", "get_ip",
                    "get_subnet", "get_gateway", "write_uart", "trigger_notification"}


@pytest.mark.parametrize("api, payload", [
    ("get_status", {}), ("set_status", {"value": "restart"}), ("get_gpio", {"number": 1}),
    ("set_gpio", {"number": 1, "value": 0}), ("get_rtc", {}), ("set_rtc", {"value": 5}), ("get_mac", {}),
    ("get_ip", {}), ("get_subnet", {}), ("get_gateway", {}), ("write_uart", {"value": "x"}),
    ("trigger_notification", {"recipient": "someone@example.com", "message": "hello"}),
])
@pytest.mark.parametrize("cid", ["abc-123", 42, None])
def test_correlation_id_is_echoed_for_every_api(dev, api, payload, cid):
    reply = json.loads(dev.reply(api, json.dumps({**payload, "correlation_id": cid})))
    assert "correlation_id" in reply and reply["correlation_id"] == cid
    # ... and is the last key, the seed's keys keep their order.
    assert list(reply)[-1] == "correlation_id"
    plain = json.loads(dev.reply(api, json.dumps(payload)))
    assert "correlation_id" not in plain
    assert {k: v for k, v in reply.items() if k != "correlation_id"}.keys() == plain.keys()


def test_correlation_reply_bytes(dev):
    assert dev.reply("get_status", b'{"correlation_id": "r1"}') == b'{"value": "running", "correlation_id": "r1"}'
    assert dev.reply("get_gpio", b'{"number": "7", "correlation_id": "r2"}') == \
        b'{"number": 7, "value": 0, "correlation_id": "r2"}'


@pytest.mark.parametrize("number", [5, "5", " 5 ", 5.0, "+5"])
def test_gpio_numbers_as_ints_or_strings_reply_ints(dev, number):
    assert dev.reply("set_gpio", json.dumps({"number": number, "value": "1"}).encode()) == b'{"number": 5, "value": 1}'
    assert dev.reply("get_gpio", json.dumps({"number": number}).encode()) == b'{"number": 5, "value": 1}'


def test_gpio_state_is_kept_per_pin_and_defaults_to_zero(dev):
    dev.reply("set_gpio", b'{"number": 1, "value": 1}')
    dev.reply("set_gpio", b'{"number": "2", "value": "0"}')
    assert json.loads(dev.reply("get_gpio", b'{"number": 1}')) == {"number": 1, "value": 1}
    assert json.loads(dev.reply("get_gpio", b'{"number": 2}')) == {"number": 2, "value": 0}
    assert json.loads(dev.reply("get_gpio", b'{"number": 99}')) == {"number": 99, "value": 0}
    dev.reply("set_gpio", b'{"number": 1, "value": 0}')
    assert json.loads(dev.reply("get_gpio", b'{"number": 1}')) == {"number": 1, "value": 0}


@pytest.mark.parametrize("value, stored", [(1, 1), ("1", 1), (0, 0), ("0", 0), (True, 1), (False, 0), (7, 1)])
def test_gpio_values_normalised_to_0_or_1(dev, value, stored):
    assert json.loads(dev.reply("set_gpio", json.dumps({"number": 4, "value": value})))["value"] == stored


def test_gpio_devices_do_not_share_state():
    a, b = Device("a" * 40, network=NET), Device("b" * 40, network=NET)
    a.reply("set_gpio", b'{"number": 1, "value": 1}')
    assert json.loads(b.reply("get_gpio", b'{"number": 1}'))["value"] == 0


@pytest.mark.parametrize("api, payload", [
    ("get_gpio", b"{}"), ("get_gpio", b'{"number": "five"}'), ("get_gpio", b'{"number": -1}'),
    ("get_gpio", b'{"number": 1.5}'), ("get_gpio", b'{"number": null}'), ("set_gpio", b'{"number": 1}'),
    ("set_gpio", b'{"number": 1, "value": "on"}'), ("set_rtc", b"{}"), ("write_uart", b"{}"),
])
def test_invalid_parameters_get_no_reply(dev, api, payload, caplog):
    with caplog.at_level(logging.WARNING, logger="simulators.device"):
        assert dev.handle(api, payload) == []
    assert "invalid" in caplog.text


@pytest.mark.parametrize("payload", [b"{", b"not json", b"\xff\xfe", b"[1, 2]", b'"string"', b"42", b"null",
                                     b'{"value": "restart"', b"\x00"])
@pytest.mark.parametrize("api", sorted(APIS))
def test_malformed_payloads_are_logged_and_ignored(dev, api, payload, caplog):
    with caplog.at_level(logging.WARNING, logger="simulators.device"):
        assert dev.handle(api, payload) == []
        assert dev.reply(api, payload) is None
    assert caplog.records, "malformed payload should be logged"


def test_empty_payload_counts_as_empty_object(dev):
    assert dev.reply("get_status", b"") == b'{"value": "running"}'
    assert dev.reply("get_status", b"  \n") == b'{"value": "running"}'


def test_payload_may_be_str_or_bytearray(dev):
    assert dev.reply("get_status", "{}") == b'{"value": "running"}'
    assert dev.reply("get_status", bytearray(b"{}")) == b'{"value": "running"}'


def test_unknown_api_is_ignored(dev, caplog):
    with caplog.at_level(logging.WARNING, logger="simulators.device"):
        assert dev.handle("set_mac", b'{"value": "AA:BB:CC:DD:EE:00"}') == []
        assert dev.handle("__init__", b"{}") == []
        assert dev.handle("reply", b"{}") == []
    assert "unknown api" in caplog.text


def test_set_status_always_answers_restarting(dev):
    assert dev.reply("set_status", b'{"value": "something"}') == b'{"value": "restarting"}'
    assert dev.reply("set_status", b"{}") == b'{"value": "restarting"}'


def test_rtc(dev):
    assert dev.reply("get_rtc", b"{}") == b'{"value": 1700000000}'
    # set_rtc echoes what it was given and does not move the clock (seed behaviour)
    assert dev.reply("set_rtc", b'{"value": "1600000000"}') == b'{"value": "1600000000"}'
    assert dev.reply("get_rtc", b"{}") == b'{"value": 1700000000}'


def test_write_uart_displays_and_echoes(dev, shown):
    assert dev.handle("write_uart", b'{"value": "plain text"}') == [Publish("write_uart", b'{"value": "plain text"}')]
    assert shown == [(DEV, "plain text")]


def test_write_uart_hello_world_also_triggers_notification(dev, shown):
    pubs = dev.handle("write_uart", b'{"value": "say Hello World now", "correlation_id": "c9"}')
    assert pubs == [
        Publish("write_uart", b'{"value": "say Hello World now", "correlation_id": "c9"}'),
        Publish("trigger_notification",
                dumps({"recipient": "owner@example.com", "message": KEYWORD_MESSAGE})),
    ]
    assert pubs[1].payload == b'{"recipient": "owner@example.com", "message": "Hi, How are you today?"}'
    assert dev.reply("write_uart", b'{"value": "Hello World"}') == b'{"value": "Hello World"}'
    assert shown[0] == (DEV, "say Hello World now")


def test_write_uart_keyword_is_case_sensitive(dev):
    assert len(dev.handle("write_uart", b'{"value": "hello world"}')) == 1


def test_notification_to_self_is_displayed_not_answered(dev, shown):
    payload = {"recipient": DEV, "message": "from another device"}
    assert dev.handle("trigger_notification", json.dumps({**payload, "correlation_id": "x"}).encode()) == []
    assert dev.reply("trigger_notification", json.dumps({**payload, "correlation_id": "y"}).encode()) is None
    assert shown == [(DEV, "notification: from another device")] * 2


def test_a_repeated_correlation_id_is_not_run_again(dev, shown, caplog):
    """A broker node that dies before it sees a device's acknowledgement delivers the request again
    (MQTT QoS 1 is at least once): the device must not run it twice."""
    first = dev.handle("write_uart", b'{"value": "m:once", "correlation_id": "c1"}')
    assert first == [Publish("write_uart", b'{"value": "m:once", "correlation_id": "c1"}')]
    with caplog.at_level(logging.WARNING, logger="simulators.device"):
        assert dev.handle("write_uart", b'{"value": "m:once", "correlation_id": "c1"}') == []
    assert shown == [(DEV, "m:once")]
    assert "repeated write_uart request (correlation id 'c1') not run again" in caplog.text
    # The id is the key, whatever the api: a platform command id is never reused.
    assert dev.handle("set_gpio", b'{"number": 1, "value": 1, "correlation_id": "c1"}') == []
    assert dev.gpio == {}


def test_the_device_remembers_the_last_eight_string_ids(dev, shown):
    for n in range(9):
        dev.handle("write_uart", json.dumps({"value": f"m{n}", "correlation_id": f"c{n}"}).encode())
    dev.handle("write_uart", b'{"value": "again", "correlation_id": "c8"}')  # remembered: dropped
    dev.handle("write_uart", b'{"value": "again", "correlation_id": "c0"}')  # forgotten: runs
    assert [text for _, text in shown] == [f"m{n}" for n in range(9)] + ["again"]


@pytest.mark.parametrize("cid", [7, None, {"a": 1}, "x" * 65])
def test_ids_a_device_does_not_remember_run_every_time(dev, shown, cid):
    """Only string ids of up to 64 UTF-8 bytes are remembered (the C core's bound); others, like
    requests without an id, run each time they come."""
    payload = json.dumps({"value": "m", "correlation_id": cid}).encode()
    assert len(dev.handle("write_uart", payload)) == 1
    assert len(dev.handle("write_uart", payload)) == 1
    assert len(shown) == 2


def test_a_request_that_did_not_run_is_not_remembered(dev):
    assert dev.handle("set_gpio", b'{"number": "x", "value": 1, "correlation_id": "c2"}') == []
    assert dev.reply("set_gpio", b'{"number": 2, "value": 1, "correlation_id": "c2"}') == \
        b'{"number": 2, "value": 1, "correlation_id": "c2"}'


def test_notification_to_others_is_echoed_unchanged(dev, shown):
    payload = b'{"recipient": "+6512345678", "message": "hi", "extra": [1, 2]}'
    assert dev.handle("trigger_notification", payload) == [Publish("trigger_notification", payload)]
    assert shown == []
    # no recipient at all: still not "self", echoed
    assert dev.reply("trigger_notification", b'{"message": "m"}') == b'{"message": "m"}'


def test_replies_are_ascii_json_dumps_style(dev):
    reply = dev.reply("write_uart", '{"value": "caf\u00e9 \u2603"}'.encode())
    assert reply == b'{"value": "caf\\u00e9 \\u2603"}'
    assert json.loads(reply) == {"value": "caf\u00e9 \u2603"}


def test_request_topics(dev):
    assert dev.request_api(f"{DEV}/get_status") == "get_status"
    assert dev.request_api(f"{DEV}.get_status", ".") == "get_status"
    assert dev.request_api(f"{DEV}/") is None
    assert dev.request_api("server/" + DEV + "/get_status") is None
    assert dev.request_api("0" * 40 + "/get_status") is None
    assert dev.request_api(DEV + "x/get_status") is None
    assert dev.request_api(f"{DEV}/get_status", ".") is None
    assert dev.reply_topic("get_gpio") == f"server/{DEV}/get_gpio"
    assert dev.reply_topic("get_gpio", ".") == f"server.{DEV}.get_gpio"


def test_host_network_info_is_sane():
    info = host_network_info()
    assert len(info.mac.split(":")) == 6 and info.mac == info.mac.upper()
    for addr in (info.ip, info.subnet, info.gateway):
        parts = addr.split(".")
        assert len(parts) == 4 and all(0 <= int(p) <= 255 for p in parts)


def test_default_device_uses_host_network():
    d = Device(DEV, display=lambda *a: None)
    assert json.loads(d.reply("get_ip", b"{}"))["value"] == host_network_info().ip


def test_the_uart_keyword_notifies_every_listed_recipient():
    dev = Device("ab" * 20, notification_recipient="owner@example.com, +15551234567")
    published = dev.handle("write_uart", b'{"value": "Hello World"}')
    assert [p.api for p in published] == ["write_uart", "trigger_notification", "trigger_notification"]
    assert [json.loads(p.payload)["recipient"] for p in published[1:]] == ["owner@example.com", "+15551234567"]
