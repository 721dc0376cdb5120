"""Bodies no schema describes, sent to every operation that reads one: nesting deeper than the
parser's recursion limit, non-UTF-8 bytes, lone surrogates, numbers out of float range, NaN,
non-object JSON, wrong media types. Each must get a 4xx problem (or the v2 NG envelope)."""

from __future__ import annotations

import json

import pytest
from falcon import testing

from gateways.http.openapi import OPERATIONS, V2
from tests.fuzz.test_rest_fuzz import assert_error_shape, is_device_call

WITH_BODY = sorted([(p, m) for (p, m), op in OPERATIONS.items() if op[2]] + list(V2))
HOSTILE = {
    # deeper than Python's recursion limit, small enough for the 64 KiB body limit
    "deep-array": ("application/json", b"[" * 30_000 + b"]" * 30_000),
    "deep-object": ("application/json", b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
    "not-utf8": ("application/json", b'{"username": "\xff\xfe"}'),
    "raw-surrogate": ("application/json", b'{"username": "\xed\xa0\x80", "devicename": "\xed\xa0\x80"}'),
    "lone-surrogate": ("application/json", json.dumps(
        {field: "\ud800" for field in ("username", "password", "email", "given_name", "family_name", "code",
                                        "refresh_token", "name", "csr", "api", "devicename", "confirmationcode",
                                        "givenname", "familyname", "recipient", "message", "value")}).encode()),
    "surrogate-in-params": ("application/json", b'{"api": "write_uart", "params": {"value": "\\udfff"}, '
                                                b'"wait": false, "value": "\\udfff", "recipient": "\\udc00x"}'),
    "huge-number": ("application/json", b'{"timeout": 1e999, "ttl": -1e999, "value": 1e999, "number": 1e999}'),
    "nan": ("application/json", b'{"timeout": NaN, "ttl": Infinity, "value": NaN, "number": NaN}'),
    "big-int": ("application/json", b'{"value": ' + b"9" * 5000 + b', "number": ' + b"9" * 5000 + b"}"),
    "null": ("application/json", b"null"),
    "array": ("application/json", b"[]"),
    "string": ("application/json", b'"x"'),
    "truncated": ("application/json", b'{"username": '),
    "form": ("application/x-www-form-urlencoded", b"username=a&password=b"),
    "bad-charset": ("application/json; charset=klingon", b'{"username": "a"}'),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("path,method", WITH_BODY, ids=[f"{m.upper()} {p}" for p, m in WITH_BODY])
def test_hostile_bodies_get_a_clean_error(fuzz_target, path, method, kind):
    content_type, body = HOSTILE[kind]
    token = fuzz_target.token
    answer = fuzz_target.client.simulate_request(
        method.upper(), path.replace("{name}", fuzz_target.device).replace("{number}", "3"), body=body,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {token['access']}"})
    assert answer.status_code < 500 or (is_device_call(path) and answer.status_code in (502, 503, 504)), \
        (answer.status_code, answer.text[:300])
    if answer.status_code >= 400:
        assert_error_shape(path, method, _Adapter(answer))


class _Adapter:
    """falcon's test result read through the helper written for schemathesis responses."""

    def __init__(self, result):
        self.status_code, self.text = result.status_code, result.text
        self.headers = {k: [v] for k, v in result.headers.items()}
        self.json = lambda: result.json


PARAMETERISED = sorted([(p, m) for (p, m) in OPERATIONS if "{" in p or (p, m) == ("/v1/devices", "get")])
HOSTILE_VALUES = {
    "surrogate-utf8": "%ED%A0%80",  # UTF-8 of a lone surrogate, percent-encoded
    "invalid-utf8": "%FF%FE",
    "nul": "%00",
    "long": "x" * 5000,
    "dots": "..",
    "huge-number": "1e999",
    "nan": "nan",
    "big-int": "9" * 5000,
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_VALUES))
@pytest.mark.parametrize("path,method", PARAMETERISED, ids=[f"{m.upper()} {p}" for p, m in PARAMETERISED])
def test_hostile_path_and_query_values_get_a_clean_error(fuzz_target, path, method, kind):
    value = HOSTILE_VALUES[kind]
    target = path.replace("{name}", value).replace("{number}", value).replace("{command_id}", value) \
        .replace("{slug}", value)
    query = f"limit={value}&offset={value}&timeout={value}&ttl={value}&wait={value}"
    answer = fuzz_target.client.simulate_request(
        method.upper(), target, query_string=query, json={"value": 1},
        headers={"Authorization": f"Bearer {fuzz_target.token['access']}"})
    assert answer.status_code < 500, (answer.status_code, answer.text[:300])
    if answer.status_code >= 400:
        assert_error_shape(path, method, _Adapter(answer))


def _forged_token(target) -> str:
    """A well-formed JWT whose header says alg=none, naming the fuzz user."""
    import base64
    part = lambda obj: base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': target.username, 'exp': 4102444800})}."


HOSTILE_HEADERS = {
    "basic-scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
    "bearer-empty": {"Authorization": "Bearer "},
    "bearer-latin1": {"Authorization": "Bearer \xff\xfe\xe9"},
    "bearer-huge": {"Authorization": "Bearer " + "a" * 8000},
    "bearer-three-dots": {"Authorization": "Bearer a.b.c"},
    "bearer-alg-none": None,  # filled in with the forged token
    "content-type-garbage": {"Content-Type": ";;;=\xff"},
    "request-id-hostile": {"X-Request-ID": "\xff" * 100, "X-Correlation-ID": "../../etc/passwd"},
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_HEADERS))
@pytest.mark.parametrize("path,method", sorted(OPERATIONS), ids=[f"{m.upper()} {p}" for p, m in sorted(OPERATIONS)])
def test_hostile_headers_get_a_clean_error(fuzz_target, path, method, kind):
    headers = HOSTILE_HEADERS[kind] or {"Authorization": f"Bearer {_forged_token(fuzz_target)}"}
    if "Authorization" not in headers:
        headers = {**headers, "Authorization": f"Bearer {fuzz_target.token_for(path, method)['access']}"}
    target = path.replace("{name}", "nobody").replace("{number}", "3").replace("{command_id}", "x") \
        .replace("{slug}", "x")
    answer = fuzz_target.client.simulate_request(method.upper(), target, body=b'{"value": 1}', headers=headers)
    assert answer.status_code < 500, (answer.status_code, answer.text[:300])
    if answer.status_code >= 400:
        assert_error_shape(path, method, _Adapter(answer))
    if kind.startswith(("basic", "bearer")) and fuzz_target.document["paths"][path][method]["security"]:
        assert answer.status_code == 401, answer.text


@pytest.mark.parametrize("length", ["abc", "-1", "99999999999999999999", ""])
@pytest.mark.parametrize("path,method", WITH_BODY, ids=[f"{m.upper()} {p}" for p, m in WITH_BODY])
def test_a_garbage_content_length_gets_a_clean_error(fuzz_target, path, method, length):
    """Straight through WSGI: falcon's test client refuses to send such a header."""
    environ = testing.create_environ(path=path.replace("{name}", fuzz_target.device).replace("{number}", "3"),
                                     method=method.upper(), body=b'{"value": 1}',
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {fuzz_target.token['access']}"})
    environ["CONTENT_LENGTH"] = length
    start_response = testing.StartResponseMock()
    body = b"".join(fuzz_target.app(environ, start_response))
    status = int(start_response.status.split()[0])
    assert status < 500 or (is_device_call(path) and status in (502, 503, 504)), (status, body[:300])
    if status >= 400:
        headers = {k: [v] for k, v in start_response.headers}
        assert_error_shape(path, method, _Raw(status, headers, body))


class _Raw:
    def __init__(self, status, headers, body):
        self.status_code, self.headers, self.text = status, headers, body.decode()
        self.json = lambda: json.loads(body)
