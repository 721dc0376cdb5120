"""Schemathesis fuzzes every operation in /openapi.json, valid and invalid data, with a valid token
and without one: no 5xx outside the documented device-call outcomes, every error is a problem
document (modern routes) or the NG envelope (libpyiotcloud v2), and every answer matches the
document (status codes, content types, schemas)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import checks as st_checks
from schemathesis.generation.modes import GenerationMode

from gateways.http.openapi import OPERATIONS, V2
from tests.fuzz.tally import EXAMPLES, record

CALLERS = ("token", "anonymous")
DEVICE_CALL_OUTCOMES = {502, 503, 504}  # device-call-failed, device-offline, device-timeout: documented
SCHEMA_CHECKS = [st_checks.status_code_conformance, st_checks.content_type_conformance,
                 st_checks.response_schema_conformance, st_checks.response_headers_conformance]
DOCUMENTED = sorted({*OPERATIONS, *V2, ("/openapi.json", "get")})


def is_device_call(path: str) -> bool:
    return (path.startswith("/v1/devices/{name}/") and not path.endswith("/certificate")) \
        or path.startswith("/devices/device/")


def with_caller(target, case, path: str, method: str, caller: str, dice: int) -> None:
    """A valid session for `token` (a fresh one where the call ends it), none at all for `anonymous`.
    v2 bodies get {username, token} only on routes that take a session: on /user/login a generated
    password next to the real username would lock the fuzz user out.

    With a token, some cases name the user's registered device so that the fuzzer reaches past
    "no such device" into parameter checks and the call path. There is no broker here, so those
    modern calls do not wait (wait=false answers 202 at once) and only a few v2 calls (which
    always wait) go to the device; nothing unregisters it."""
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    if caller == "token":
        token = target.token_for(path, method)
        headers["Authorization"] = f"Bearer {token['access']}"
        if (path, method) in V2 and "token" in V2[(path, method)][1] and isinstance(case.body, dict):
            case.body = {**case.body, "username": target.username, "token": token}
            if dice % 20 == 7 and method != "delete" and "devicename" in case.body:
                case.body["devicename"] = target.device
        elif (path, method) not in V2 and dice % 2 and method != "delete" and "name" in (case.path_parameters or {}):
            case.path_parameters = {**case.path_parameters, "name": target.device}
            if is_device_call(path):
                case.query = {**(case.query or {}), "wait": "false"}
                if isinstance(case.body, dict) and path.endswith("/commands"):
                    case.body = {**case.body, "wait": False}
    case.headers = headers


def assert_error_shape(path: str, method: str, response) -> None:
    content_type = {k.lower(): v for k, v in response.headers.items()}.get("content-type", [""])[0]
    if (path, method) in V2:
        assert content_type.startswith("application/json"), (response.status_code, content_type, response.text)
        body = response.json()
        assert body["status"] == "NG" and isinstance(body["message"], str), body
        return
    assert content_type == "application/problem+json", (response.status_code, content_type, response.text)
    body = response.json()
    assert body["type"].startswith("/problems/") and body["status"] == response.status_code, body
    assert isinstance(body["title"], str) and body["title"], body


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("path,method", DOCUMENTED, ids=[f"{m.upper()} {p}" for p, m in DOCUMENTED])
def test_fuzzed_requests_get_documented_answers(fuzz_target, path, method, caller):
    operation = fuzz_target.schema[path][method.upper()]
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(case=strategy, dice=st.integers(0, 99))
    def fuzz(case, dice):
        with_caller(fuzz_target, case, path, method, caller, dice)
        response = case.call()
        record(caller, response.status_code)
        status = response.status_code
        assert status < 500 or (status in DEVICE_CALL_OUTCOMES and is_device_call(path)), \
            (status, response.text)
        if status >= 400:
            assert_error_shape(path, method, response)
        case.validate_response(response, checks=SCHEMA_CHECKS)

    fuzz()
    if caller == "token":  # the token cases were really authenticated: nothing ended the shared session
        me = fuzz_target.client.simulate_get("/v1/me", headers={"Authorization": f"Bearer {fuzz_target.token['access']}"})
        assert me.status_code == 200, me.text
