"""The web app in real Chromium against a running platform with real simulators: sign up (code from the
outbox), log in, register a device, run a simulator with the downloaded credentials, see it come online
without a reload, set and read a GPIO, read the RTC, send UART text, unregister. axe-core checks every
page (no serious or critical violation) and every page is shot at 375 px and 1280 px."""

from __future__ import annotations

import json
import re
import uuid

from playwright.sync_api import expect

from tests.webapp.conftest import axe_violations, docs_dir

WIDTHS = (375, 1280)


class Pages:
    """Checks and shoots each page the journey reaches."""

    def __init__(self, page, shots):
        self.page, self.shots, self.violations, self.seen = page, shots, {}, []

    def check(self, name: str) -> None:
        page = self.page
        page.wait_for_load_state("networkidle")
        self.seen.append(name)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            bad = axe_violations(page)
            if bad:
                self.violations[f"{name}@{width}"] = bad
            page.screenshot(path=str(self.shots / f"{name}-{width}.png"), full_page=True)
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{name} scrolls sideways at {width} px ({overflow} px too wide)"
        page.set_viewport_size({"width": 1280, "height": 900})


def test_sign_up_control_and_unregister_a_device(platform, base_url, page, browser, simulator, tmp_path,
                                                 tmp_path_factory):
    pages = Pages(page, docs_dir(tmp_path_factory, "screenshots"))
    username = f"w{uuid.uuid4().hex[:9]}"
    email = f"{username}@example.com"

    page.goto(base_url + "/")
    expect(page).to_have_url(base_url + "/app/login")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    pages.check("login")

    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    pages.check("forgot-password")
    page.get_by_role("link", name="Back to log in").click()

    page.get_by_role("link", name="Create an account").click()
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    pages.check("signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Given name").fill("Web")
    page.get_by_label("Family name").fill("Tester")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(base_url + "/app/signup")  # the browser's own check: 8 characters at least
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Sign up").click()

    expect(page.get_by_role("heading", name="Confirm your account")).to_be_visible()
    expect(page.get_by_label("Username")).to_have_value(username)
    page.get_by_label("Confirmation code").fill("000000")
    with browser.expected_http_errors():
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_role("alert")).to_contain_text("code is wrong")  # a problem+json, in words
    pages.check("confirm")
    page.get_by_label("Confirmation code").fill(platform.code_for(email))
    page.get_by_role("button", name="Confirm").click()

    expect(page.get_by_text("Your account is confirmed")).to_be_visible()
    page.get_by_label("Password").fill("wrong password")
    with browser.expected_http_errors():
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Your devices")).to_be_visible()
    expect(page.get_by_text("No devices yet")).to_be_visible()
    page.get_by_label("Device name").fill("kitchen")
    page.get_by_role("button", name="Register").click()

    expect(page.get_by_role("heading", name="Credentials of kitchen")).to_be_visible()
    expect(page.get_by_label("Private key (shown once)")).to_have_value(re.compile("BEGIN .*PRIVATE KEY", re.S))
    pages.check("credentials")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download kitchen.json").click()
    credentials = tmp_path / "kitchen.json"
    download.value.save_as(credentials)
    saved = json.loads(credentials.read_text())
    assert saved["name"] == "kitchen" and "PRIVATE KEY" in saved["private_key"]

    page.get_by_role("link", name="Go to the device page").click()
    expect(page.get_by_role("heading", name="kitchen", exact=True)).to_be_visible()
    expect(page.get_by_text("This device is offline")).to_be_visible()
    with browser.expected_http_errors():
        page.get_by_role("button", name="Read status").click()
        expect(control(page, "Status")).to_contain_text("Device offline")  # at once, not after a timeout

    page.get_by_label("Queue calls while the device is offline (up to 5 minutes)").check()
    rtc = control(page, "Real-time clock")
    rtc.get_by_role("button", name="Read clock").click()
    expect(rtc.locator(".call")).to_contain_text("Queued")
    sim = simulator(credentials)  # the queued call is delivered when the device connects
    expect(page.locator(".heading-row .presence")).to_have_text("Online", timeout=20_000)  # live, no reload
    expect(rtc.locator(".call")).to_contain_text("Succeeded", timeout=20_000)
    page.get_by_label("Queue calls while the device is offline (up to 5 minutes)").uncheck()

    page.get_by_role("link", name="All devices").click()
    row = page.locator("[data-device=kitchen]")
    expect(row).to_contain_text("Online")
    sim.stop()
    expect(row).to_contain_text("Offline", timeout=20_000)  # no reload: the long poll brings it
    sim = simulator(credentials)
    expect(row).to_contain_text("Online", timeout=20_000)
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    pages.check("devices")

    row.get_by_role("link", name="kitchen").click()
    expect(page.get_by_text("This device is offline")).to_be_hidden()
    gpio = control(page, "GPIO")
    gpio.get_by_label("GPIO number (0–255)").fill("3")
    gpio.get_by_role("switch").click()
    expect(gpio).to_contain_text("Succeeded")
    expect(gpio.get_by_role("switch")).to_have_attribute("aria-checked", "true")
    gpio.get_by_label("GPIO number (0–255)").fill("3")  # forget the shown level, then read it back
    gpio.get_by_role("button", name="Read GPIO").click()
    expect(gpio.locator("output")).to_have_text("1")
    expect(gpio).to_contain_text(" ms")

    rtc = control(page, "Real-time clock")
    rtc.get_by_role("button", name="Read clock").click()
    expect(rtc).to_contain_text("Device time:")
    expect(rtc.locator(".call")).to_contain_text("Succeeded")

    uart = control(page, "UART")
    uart.get_by_label("Text to send (up to 100 characters)").fill("hello from the browser")
    uart.get_by_role("button", name="Send to UART").click()
    expect(uart.locator(".call")).to_contain_text("Succeeded")
    sim.wait_for(r"hello from the browser", timeout=10)

    network = page.locator("section.control", has=page.get_by_role("heading", name="Network"))
    network.get_by_role("button", name="Read MAC, IP, subnet and gateway").click()
    expect(network.locator(".call.succeeded")).to_have_count(4)

    status = control(page, "Status")
    status.get_by_role("button", name="Read status").click()
    expect(status.locator(".call")).to_contain_text("Succeeded")

    note = control(page, "Notification")
    note.get_by_label("Recipient (email or phone)").fill("alice@example.com")
    note.get_by_label("Message").fill("the kettle is on")
    note.get_by_role("button", name="Send notification").click()
    expect(note.locator("output")).to_have_text("sent", timeout=20_000)  # delivered by the notifier
    pages.check("device")

    note.get_by_role("link", name="Notifications of kitchen").click()
    expect(page.get_by_role("heading", name="Notifications")).to_be_visible()
    entry = page.get_by_role("list", name="Notifications").get_by_role("listitem").first
    expect(entry).to_contain_text("alice@example.com")
    expect(entry).to_contain_text("sent")
    page.get_by_label("State").select_option("failed")
    expect(page.get_by_text("No notifications match.")).to_be_visible()
    page.get_by_label("State").select_option("sent")
    expect(entry).to_contain_text("the kettle is on")
    pages.check("notifications")

    page.get_by_role("link", name="Devices", exact=True).click()
    page.locator("[data-device=kitchen]").get_by_role("link", name="kitchen").click()
    page.get_by_role("link", name="History of kitchen").click()
    expect(page.get_by_role("heading", name="History of kitchen")).to_be_visible()
    entries = page.get_by_role("list", name="History entries")
    expect(entries).to_contain_text("write_uart")
    expect(entries).to_contain_text("hello from the browser")
    expect(entries).to_contain_text("set_gpio")
    expect(page.locator("figure.chart canvas")).to_be_visible()  # the latency chart
    page.get_by_label("Device API").select_option("get_gpio")
    expect(entries.get_by_role("listitem")).to_have_count(1)
    expect(entries).to_contain_text("get_gpio")
    page.get_by_label("Device API").select_option("")
    pages.check("history")

    page.get_by_role("link", name="Analytics").click()
    expect(page.get_by_role("heading", name="Analytics")).to_be_visible()
    table = page.get_by_role("table", name="Outcomes and latency per device API")
    expect(table).to_contain_text("write_uart")
    expect(page.get_by_role("table", name="Calls per day").locator("tbody tr")).to_have_count(1)
    with page.expect_download() as exported:
        page.get_by_role("button", name="Export the history as CSV").click()
    csv_path = tmp_path / "history.csv"
    exported.value.save_as(csv_path)
    assert "write_uart" in csv_path.read_text() and csv_path.read_text().startswith("id,at,event")
    pages.check("analytics")

    page.get_by_role("link", name="Account", exact=True).click()
    expect(page.get_by_text(email)).to_be_visible()
    pages.check("account")

    page.get_by_role("link", name="Devices").click()
    page.locator("[data-device=kitchen]").get_by_role("link", name="kitchen").click()
    page.get_by_role("button", name="Unregister…").click()
    page.get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Unregister…").click()
    page.get_by_role("button", name="Yes, unregister kitchen").click()
    expect(page.get_by_role("heading", name="Your devices")).to_be_visible()
    expect(page.get_by_text("No devices yet")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto(base_url + "/app/devices")
    expect(page).to_have_url(base_url + "/app/login")

    assert not pages.violations, json.dumps(pages.violations, indent=1)
    assert not browser.errors, browser.errors


def control(page, title: str):
    return page.locator("section.control", has=page.get_by_role("heading", name=title, exact=True))

