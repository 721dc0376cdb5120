"""The OpenAPI document matches the routes: nothing served undocumented, nothing documented unserved."""

from __future__ import annotations

import pytest

from gateways.http.app import Route, routes
from gateways.http.openapi import build_document


def test_every_served_route_and_method_is_documented(api):
    document = api.get("/openapi.json").json
    assert document["openapi"] == "3.1.0"
    served = {(route.path, method) for route in routes(api.platform) for method in route.methods()}
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert served - documented == set()
    assert documented - served == {("/openapi.json", "get")}


def test_every_documented_operation_is_routed(api):
    document = api.get("/openapi.json").json
    for path, item in document["paths"].items():
        for method in item:
            answer = api.client.simulate_request(method.upper(), path.replace("{name}", "x").replace("{slug}", "x"))
            assert answer.status_code not in (405,), (path, method)
            assert not (answer.status_code == 404 and answer.json.get("type") == "/problems/not-found"
                        and "{" not in path), (path, method)


def test_an_undocumented_route_stops_the_app_from_starting(api):
    class Secret:
        def on_get(self, req, resp):
            pass
    with pytest.raises(KeyError):
        build_document([*routes(api.platform), Route("/v1/secret", Secret())], api.running.settings)
