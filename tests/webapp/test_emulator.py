"""The device emulator: a user brings a registered device online from the browser (the server runs the
MQTT simulator with the device's own certificate), talks to it, and stops it; and what the API refuses."""

from __future__ import annotations

import json

from playwright.sync_api import expect

from tests.webapp.conftest import axe_violations, log_in


def test_the_emulator_brings_a_device_online_from_the_browser(platform, base_url, page, browser, tmp_path):
    user = platform.user()
    log_in(page, base_url, user)
    name, credentials = user.device(tmp_path, "porch")  # registered elsewhere: the browser has no key

    page.goto(f"{base_url}/app/devices/{name}")
    emulator = page.locator("section", has=page.get_by_role("heading", name="Emulator"))
    expect(emulator.get_by_role("button", name="Start the emulator")).to_be_disabled()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**json.loads(credentials.read_text()), "device_id": "0" * 40}))
    emulator.get_by_label(f"Credentials file of {name} (the JSON you downloaded)").set_input_files(str(other))
    expect(emulator.get_by_role("alert")).to_contain_text("does not hold this device's")
    emulator.get_by_label(f"Credentials file of {name} (the JSON you downloaded)").set_input_files(str(credentials))
    emulator.get_by_label("Minutes to run (1–30)").fill("2")
    emulator.get_by_role("button", name="Start the emulator").click()

    expect(page.locator(".heading-row .presence")).to_have_text("Online", timeout=20_000)
    uart = page.locator("section.control", has=page.get_by_role("heading", name="UART", exact=True))
    uart.get_by_label("Text to send (up to 100 characters)").fill("shown on the emulator")
    uart.get_by_role("button", name="Send to UART").click()
    expect(uart.locator(".call")).to_contain_text("Succeeded")
    expect(emulator.get_by_label("Device display")).to_contain_text("shown on the emulator", timeout=10_000)
    assert [v for v in axe_violations(page)] == []

    emulator.get_by_role("button", name="Stop the emulator").click()
    expect(page.locator(".heading-row .presence")).to_have_text("Offline", timeout=20_000)
    expect(emulator.get_by_role("button", name="Start the emulator")).to_be_enabled()
    assert not browser.errors, browser.errors


def test_the_emulator_takes_only_the_callers_own_device_and_its_own_key(platform, tmp_path):
    alice, mallory = platform.user(), platform.user()
    name, path = alice.device(tmp_path, "a1")
    _, other_path = alice.device(tmp_path, "a2")
    mine, other = json.loads(path.read_text()), json.loads(other_path.read_text())
    body = {"name": name, "certificate": mine["certificate"], "private_key": mine["private_key"]}

    assert mallory("POST", "/v1/emulator", body)[0] == 404  # not hers: no such device, for her
    status, problem = alice("POST", "/v1/emulator", {**body, "certificate": other["certificate"]})
    assert (status, problem["type"]) == (400, "/problems/validation-failed") and "another device" in problem["detail"]
    status, problem = alice("POST", "/v1/emulator", {**body, "private_key": other["private_key"]})
    assert status == 400 and "does not match" in problem["detail"]
    assert alice("POST", "/v1/emulator", {**body, "minutes": 31})[0] == 400
    assert alice("POST", "/v1/emulator", {**body, "certificate": "not a pem"})[0] == 400
    assert alice("GET", "/v1/emulator") == (200, {"device": None, "running": False})
    assert alice("DELETE", "/v1/emulator")[0] == 404

    status, started = alice("POST", "/v1/emulator", {**body, "minutes": 1})
    assert status == 201 and started["running"] and started["device"] == name
    alice.wait_for_connection(name, "online", timeout=20)
    assert mallory("GET", "/v1/emulator") == (200, {"device": None, "running": False})
    assert mallory("DELETE", "/v1/emulator")[0] == 404
    # a second start replaces the first: one emulator per user
    status, again = alice("POST", "/v1/emulator", {**body, "minutes": 1})
    assert status == 201 and again["started_at"] != started["started_at"]
    assert alice("DELETE", "/v1/emulator")[0] == 204
    alice.wait_for_connection(name, "offline", timeout=20)
    assert alice("GET", "/v1/emulator") == (200, {"device": None, "running": False})
