"""The device-API table (commands/device_apis.py) is the one source of the device routes of both REST
flavours, their validation and their OpenAPI entries: every API in it is served and documented, and
an API added to it (one line) is served, validated and documented everywhere without another edit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from commands.device_apis import DEVICE_APIS, DeviceApi, integer, text
from gateways.http.device_resources import device_resources
from tests.unit.device_api_app import BEARER, V2_SESSION, device_api_client

REPO = Path(__file__).resolve().parents[2]
# Two APIs libpyiotcloud-style firmware could add: a write with a value, a read with a selector.
NEW_APIS = """
from commands.device_apis import DEVICE_APIS, DeviceApi, integer, text
DEVICE_APIS["set_mac"] = DeviceApi("set_mac", (text("value", 17),))
DEVICE_APIS["get_adc"] = DeviceApi("get_adc", (integer("channel", 0, 3, hint="ADC channel", selector=True),),
                                   answer="millivolts")
"""


def exercise(client) -> dict:
    """What a client sees of the table: the OpenAPI document and the answer to one call per route and method."""
    document = client.simulate_get("/openapi.json").json
    answers = {}
    for path, item in document["paths"].items():
        if path.startswith("/v1/devices/{name}/") and path.split("/")[4] not in ("commands", "certificate", "password",
                                                                                  "notifications", "history"):
            url = path.replace("{name}", "kitchen").replace("{number}", "7").replace("{channel}", "2")
            for method in item:
                body = {"value": 1, "recipient": "r", "message": "m"} if method == "put" else None
                if path.endswith("/status"):
                    body = body and {"value": "restart"}
                if path.endswith(("/uart", "/mac")):
                    body = body and {"value": "AA:BB:CC:DD:EE:FF"}
                answer = client.simulate_request(method.upper(), url, json=body, headers=BEARER)
                answers[f"{method} {path}"] = (answer.status_code, answer.json.get("value"))
        elif path.startswith("/devices/device/"):
            for method in item:
                body = {**V2_SESSION, "devicename": "kitchen", "number": "7", "channel": "2", "value": "1"}
                body |= {"recipient": "r", "message": "m"} if path.endswith("/notification") else {}
                body |= {"value": "restart"} if path.endswith("/status") and method == "put" else {}
                body |= {"value": "AA:BB:CC:DD:EE:FF"} if path.endswith(("/uart", "/mac")) else {}
                answer = client.simulate_request(method.upper(), path, json=body)
                answers[f"{method} {path}"] = (answer.status_code, answer.json.get("value"))
    return {"document": document, "answers": answers}


def served_apis(answers: dict) -> dict[str, set[str]]:
    """api name -> the routes (method and path) that called it."""
    served: dict[str, set[str]] = {}
    for route, (status, value) in answers.items():
        assert status == 200, (route, status, value)
        served.setdefault(value["api"], set()).add(route)
    return served


def test_every_api_in_the_table_is_served_by_both_flavours_and_documented():
    served = served_apis(exercise(device_api_client())["answers"])
    assert set(served) == set(DEVICE_APIS)
    for name, routes in served.items():
        flavours = {"v2" if " /devices/" in route else "modern" for route in routes}
        assert flavours == {"modern", "v2"}, (name, routes)


def test_an_api_added_to_the_table_is_served_validated_and_documented():
    script = NEW_APIS + "import json\nfrom tests.unit.test_device_api_table import exercise, device_api_client\n" \
                        "client = device_api_client()\nresult = exercise(client)\n" \
                        "too_long = client.simulate_put('/v1/devices/k/mac', json={'value': 'x' * 18}, " \
                        "headers={'Authorization': 'Bearer t'})\n" \
                        "result['too_long'] = [too_long.status_code, too_long.json['type'], too_long.json['field']]\n" \
                        "print(json.dumps(result))\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    served = served_apis(result["answers"])
    assert served["set_mac"] == {"put /v1/devices/{name}/mac", "put /devices/device/mac"}
    assert served["get_mac"] == {"get /v1/devices/{name}/mac", "post /devices/device/mac", "get /devices/device/mac"}
    assert served["get_adc"] == {"get /v1/devices/{name}/adc/{channel}", "post /devices/device/adc",
                                 "get /devices/device/adc"}
    assert result["answers"]["get /v1/devices/{name}/adc/{channel}"][1]["params"] == {"channel": 2}
    assert result["too_long"] == [400, "/problems/validation-failed", "value"]

    paths, schemas = result["document"]["paths"], result["document"]["components"]["schemas"]
    put_mac = paths["/v1/devices/{name}/mac"]["put"]
    assert put_mac["summary"] == "set_mac {value: text}"
    assert put_mac["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Value"}
    assert "text (mac)" in schemas["Value"]["properties"]["value"]["description"]
    get_adc = paths["/v1/devices/{name}/adc/{channel}"]["get"]
    assert get_adc["summary"] == "get_adc (millivolts)"
    assert {"name": "channel", "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 0, "maximum": 3, "description": "ADC channel"}} \
        in get_adc["parameters"]
    v2_adc = paths["/devices/device/adc"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "channel" in v2_adc["required"] and v2_adc["properties"]["channel"]["type"] == ["integer", "string"]
    assert result["document"]["components"]["schemas"]["Command"]["properties"]["api"]["enum"][-2:] == \
        ["set_mac", "get_adc"]


@pytest.mark.parametrize("table,problem", [
    ({"get_adc": DeviceApi("get_adc", (integer("channel", 0, 3),))}, "a GET carries no body"),
    ({"set_led": DeviceApi("set_led", (text("value", 8),)), "write_led": DeviceApi("write_led", (text("value", 8),))},
     "would both write"),
    ({"get_pin": DeviceApi("get_pin", (integer("number", 0, 9, selector=True),)),
      "set_pin": DeviceApi("set_pin", (integer("value", 0, 1),))}, "same selectors"),
])
def test_a_table_the_routes_cannot_serve_stops_the_start(table, problem):
    with pytest.raises(ValueError, match=problem):
        device_resources(table)
