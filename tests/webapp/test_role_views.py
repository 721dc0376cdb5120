"""What each role sees: an owner audits their own device (timeline, state at a time); an auditor also
verifies the event store; an analyst's analytics cover everyone's devices. Roles are granted with the
CLI, as an operator would."""

from __future__ import annotations

import subprocess
import sys

from playwright.sync_api import expect

from tests.webapp.conftest import REPO, axe_violations, docs_dir, log_in


def grant(platform, username: str, role: str) -> None:
    subprocess.run([sys.executable, "-m", "iotcloud.cli", "users", "grant", username, role], env=platform.env,
                   cwd=REPO, check=True, capture_output=True, timeout=60)


def test_an_owner_audits_their_device_and_an_auditor_verifies_the_store(platform, base_url, page, browser, tmp_path,
                                                                        tmp_path_factory):
    owner = platform.user()
    name, _ = owner.device(tmp_path, "meter")
    log_in(page, base_url, owner)
    expect(page.get_by_role("link", name="Audit", exact=True)).to_have_count(0)  # not an auditor
    page.goto(f"{base_url}/app/devices/{name}")
    page.get_by_role("link", name=f"Audit trail of {name}").click()
    timeline = page.get_by_role("table", name="events, oldest first")
    expect(timeline).to_contain_text("Registered")
    expect(timeline).to_contain_text(f"user:{owner.username}")
    page.get_by_role("button", name="Show the device then").click()
    expect(page.get_by_label("Device state")).to_contain_text(owner.username)
    expect(page.get_by_role("button", name="Verify now")).to_have_count(0)
    page.set_viewport_size({"width": 375, "height": 900})
    assert axe_violations(page) == []
    page.screenshot(path=str(docs_dir(tmp_path_factory, "screenshots") / "audit-375.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Log out").click()

    auditor = platform.user()
    grant(platform, auditor.username, "auditor")
    log_in(page, base_url, auditor)
    page.get_by_role("link", name="Audit", exact=True).click()
    page.get_by_label("Device id (40 hex characters)").fill(owner("GET", f"/v1/devices/{name}")[1]["device_id"])
    page.get_by_role("button", name="Audit this device").click()
    expect(page.get_by_role("table", name="events, oldest first")).to_contain_text("Registered")
    page.get_by_role("button", name="Verify now").click()
    expect(page.get_by_role("status").filter(has_text="Intact")).to_be_visible(timeout=60_000)
    assert axe_violations(page) == []
    page.screenshot(path=str(docs_dir(tmp_path_factory, "screenshots") / "audit-1280.png"), full_page=True)
    page.get_by_role("button", name="Log out").click()
    assert not browser.errors, browser.errors


def test_an_analyst_sees_everyones_calls(platform, base_url, page, browser, simulator, tmp_path):
    someone = platform.user()
    name, credentials = someone.device(tmp_path, "pump")
    simulator(credentials)
    someone.wait_for_connection(name, "online", timeout=20)
    assert someone("GET", f"/v1/devices/{name}/rtc")[0] == 200

    analyst = platform.user()
    grant(platform, analyst.username, "analyst")
    log_in(page, base_url, analyst)
    page.get_by_role("link", name="Analytics").click()
    expect(page.get_by_text("You hold the analyst role")).to_be_visible()
    page.get_by_label("Owner (empty: everyone)").fill(someone.username)
    page.get_by_label("Owner (empty: everyone)").press("Enter")
    expect(page.get_by_role("table", name="Outcomes and latency per device API")).to_contain_text("get_rtc")
    assert axe_violations(page) == []
    page.get_by_role("button", name="Log out").click()
    assert not browser.errors, browser.errors
