"""The Admin page (administrators: every account with grant/revoke, every device) and "Sign out
everywhere" on the Account page, against the running platform."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.webapp.conftest import axe_violations, docs_dir, log_in
from tests.webapp.test_role_views import grant


def test_an_administrator_sees_everyones_devices_and_grants_a_role(platform, base_url, page, browser, tmp_path,
                                                                    tmp_path_factory):
    someone = platform.user()
    name, _ = someone.device(tmp_path, "boiler")
    admin = platform.user()
    grant(platform, admin.username, "admin")
    log_in(page, base_url, admin)
    page.get_by_role("link", name="Admin", exact=True).click()
    devices = page.get_by_role("region", name="All devices (scrolls sideways)")
    expect(devices.get_by_role("row").filter(has_text=someone.username)).to_contain_text(name)
    page.get_by_role("button", name=f"Grant analyst to {someone.username}").click()
    expect(page.get_by_role("status").filter(has_text=f"analyst granted to {someone.username}")).to_be_visible()
    expect(page.get_by_role("button", name=f"Revoke analyst from {someone.username}")).to_be_visible()
    assert "analyst" in someone("GET", "/v1/me")[1]["roles"]
    # the administrator's own admin role can only be revoked by another administrator
    expect(page.get_by_role("button", name=f"Revoke admin from {admin.username}")).to_be_disabled()
    assert axe_violations(page) == []
    shots = docs_dir(tmp_path_factory, "screenshots")
    page.screenshot(path=str(shots / "admin-1280.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 900})
    assert axe_violations(page) == []
    page.screenshot(path=str(shots / "admin-375.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Log out").click()
    assert not browser.errors, browser.errors


def test_sign_out_everywhere_ends_the_other_sessions(platform, base_url, page, browser):
    user = platform.user()  # its token is one session (another browser, say); the tab logs in for another
    log_in(page, base_url, user)
    expect(page.get_by_role("link", name="Admin", exact=True)).to_have_count(0)  # not an administrator
    assert user("POST", "/v1/auth/logout-everywhere")[0] == 204
    with browser.expected_http_errors():
        # the tab's next request (its device-list long poll, or this page) is refused: back to logging in
        page.goto(base_url + "/app/notifications")
        expect(page.get_by_role("heading", name="Log in")).to_be_visible(timeout=30_000)

    log_in(page, base_url, user)
    status, tokens = platform.http("POST", "/v1/auth/login", {"username": user.username, "password": "correct horse"})
    assert status == 200 and platform.http("GET", "/v1/me", None, tokens["access_token"])[0] == 200
    page.get_by_role("link", name="Account").click()
    page.get_by_role("button", name="Sign out everywhere…").click()
    page.get_by_role("button", name="Yes, sign out everywhere").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible(timeout=30_000)
    assert platform.http("GET", "/v1/me", None, tokens["access_token"])[0] == 401
    assert platform.http("POST", "/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})[0] == 401
    assert not browser.errors, browser.errors
