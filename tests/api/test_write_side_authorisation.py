"""Authorisation decisions rest on state only the write side controls: a tampered read model (the
embedded read store answers anyone on loopback) neither hands a device to another user nor
redirects a call to another device. And /readyz tells the public no more than up or down."""

from __future__ import annotations

import json
import uuid

from queries.read_models import DEVICE_LIST
from tests.api.conftest import Api, assert_problem
from tests.conftest import RunningPlatform


def device_list(api):
    return api.platform.catalogue.collection(DEVICE_LIST)


def new_user(api) -> tuple[str, str]:
    username = f"u{uuid.uuid4().hex[:10]}"
    return username, api.signed_in(username)


def test_a_device_whose_read_model_owner_was_changed_stays_its_owners(api):
    alice, alice_token = new_user(api)
    mallory, mallory_token = new_user(api)
    assert api.post("/v1/devices", {"name": "lamp"}, alice_token).status_code == 201
    assert device_list(api).update_one({"owner": alice, "name": "lamp"}, {"$set": {"owner": mallory}}).modified_count

    answer = api.post("/v1/devices/lamp/commands", {"api": "set_gpio", "params": {"number": 1, "value": 1},
                                                    "wait": False}, mallory_token)
    assert_problem(answer, 404, "device-not-found")
    answer = api.client.simulate_put("/v1/devices/lamp/gpio/1?wait=false", json={"value": 1},
                                     headers={"Authorization": f"Bearer {mallory_token}"})
    assert_problem(answer, 404, "device-not-found")
    v2_login = api.post("/user/login", {"username": mallory, "password": "correct horse"}).json["token"]
    answer = api.client.simulate_post("/devices/device/gpio", body=json.dumps(
        {"username": mallory, "token": v2_login, "devicename": "lamp", "number": "1", "value": "1"}),
        headers={"Content-Type": "application/json"})
    assert (answer.status_code, answer.json) == (400, {"status": "NG", "message": "Device is not registered"})
    # The real owner still reaches it.
    assert api.post("/v1/devices/lamp/commands", {"api": "get_status", "wait": False}, alice_token).status_code == 202


def test_a_call_goes_to_the_device_the_write_side_registered_not_the_read_models_id(api):
    alice, alice_token = new_user(api)
    mallory, mallory_token = new_user(api)
    victim_id = api.post("/v1/devices", {"name": "lamp"}, alice_token).json["device_id"]
    own_id = api.post("/v1/devices", {"name": "mine"}, mallory_token).json["device_id"]
    # device_id is a unique index, so the attacker moves the victim's row aside first.
    assert device_list(api).update_one({"device_id": victim_id}, {"$set": {"device_id": "0" * 40}}).modified_count
    assert device_list(api).update_one({"owner": mallory, "name": "mine"},
                                       {"$set": {"device_id": victim_id, "correlation_ids": True}}).modified_count

    answer = api.post("/v1/devices/mine/commands", {"api": "set_gpio", "params": {"number": 1, "value": 1},
                                                    "wait": False}, mallory_token)
    assert answer.status_code == 202, answer.text
    command = api.platform.control.command(answer.json["command_id"])
    assert (command.device_id, command.owner, command.correlate) == (own_id, mallory, False)


def test_readyz_answers_the_public_status_only_and_operators_the_details(make_settings):
    running = RunningPlatform(make_settings("sqlite", operators="opsadmin, root"))
    try:
        api = Api(running)
        public = api.get("/readyz")
        assert (public.status_code, public.json) == (200, {"status": "ready"})
        _, someone = new_user(api)
        assert api.get("/readyz", someone).json == {"status": "ready"}
        assert api.get("/readyz", "not.a.token").json == {"status": "ready"}
        operator = api.get("/readyz", api.signed_in("opsadmin"))
        assert operator.json["status"] == "ready"
        assert {"event_store.accounts", "event_store.device_fleet", "read_store"} <= set(operator.json["checks"])
    finally:
        running.close()



def test_a_name_unregistered_and_registered_again_reaches_the_new_device_at_once(api):
    """The API remembers which device a name refers to (commands/device_directory.py): a change saved
    through it is forgotten before its answer, whatever the directory's listener has read yet."""
    alice, alice_token = new_user(api)
    old_id = api.post("/v1/devices", {"name": "lamp"}, alice_token).json["device_id"]
    call = {"api": "get_status", "wait": False}
    first = api.post("/v1/devices/lamp/commands", call, alice_token)
    assert api.platform.control.command(first.json["command_id"]).device_id == old_id
    assert api.delete("/v1/devices/lamp", alice_token).status_code == 204
    assert_problem(api.post("/v1/devices/lamp/commands", call, alice_token), 404, "device-not-found")
    new_id = api.post("/v1/devices", {"name": "lamp"}, alice_token).json["device_id"]
    again = api.post("/v1/devices/lamp/commands", call, alice_token)
    assert again.status_code == 202, again.text
    assert new_id != old_id and api.platform.control.command(again.json["command_id"]).device_id == new_id
