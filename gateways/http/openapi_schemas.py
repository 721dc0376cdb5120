"""The OpenAPI document's schemas: the components both REST flavours refer to, and the body fields of
the libpyiotcloud v2 routes. Device-call bodies are derived from the device-API table."""

from __future__ import annotations

from commands.device_apis import DEVICE_APIS, DeviceApi
from commands.domain.device_ids import DEVICE_ID_SHAPE
from gateways.http.device_resources import body_fields, device_resources

S = {"type": "string"}
PEM = {"type": "string", "description": "PEM text"}
TIME = {"type": ["string", "null"], "description": "ISO 8601 date-time"}
NULLABLE_S = {"type": ["string", "null"]}


def obj(required: list[str], **props) -> dict:
    return {"type": "object", "required": required, "properties": props}


def string(max_length: int, min_length: int = 1, **extra) -> dict:
    return {"type": "string", "minLength": min_length, "maxLength": max_length, **extra}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


USERNAME, PASSWORD, EMAIL = string(64), string(256, 8), string(254, format="email")
CODE = string(16, description="the six-digit code from the email")


# -- device calls, from commands.device_apis -------------------------------------------------------
# A write whose body is one `value` shares the "Value" schema; any other body is a schema named after
# its subject (trigger_notification: "Notification").


def device_request_schema(api: DeviceApi | None) -> str | None:
    fields = body_fields(api)
    if not fields:
        return None
    return "Value" if fields == ("value",) else api.subject.title()


def device_request_schemas() -> dict[str, dict]:
    writes = [resource.write for resource in device_resources() if resource.write]
    values = [f"{api.param('value').hint} ({api.subject})" for api in writes if device_request_schema(api) == "Value"]
    schemas = {"Value": obj(["value"], value={"description": ", ".join(values)})} if values else {}
    for api in writes:
        if device_request_schema(api) not in (None, "Value"):
            fields = [p for p in api.params if not p.selector]
            schemas[device_request_schema(api)] = obj([p.name for p in fields], **{p.name: p.schema for p in fields})
    return schemas


SCHEMAS = {
    "SignUp": obj(["username", "password", "email", "given_name", "family_name"], username=USERNAME,
                  password=PASSWORD, email=EMAIL, given_name=string(128), family_name=string(128)),
    "SignedUp": obj(["username", "status"], username=S, status={"const": "UNCONFIRMED"}, next=S),
    "Confirm": obj(["username", "code"], username=USERNAME, code=CODE),
    "Confirmed": obj(["username", "status"], username=S, status={"const": "CONFIRMED"}),
    "Username": obj(["username"], username=USERNAME),
    "CodeSent": obj(["sent"], username=NULLABLE_S, sent={"type": "boolean"}, next=S),
    "Login": obj(["username", "password"], username=USERNAME, password=string(256)),
    "Refresh": obj(["refresh_token"], refresh_token=string(1024)),
    "ForgotPassword": {**obj([], username=USERNAME, email=EMAIL),
                       "description": "username or email (at least one)"},
    "ResetPassword": {**obj(["code", "password"], username=USERNAME, email=EMAIL, code=CODE, password=PASSWORD),
                      "description": "username or email (at least one), as given to forgot-password"},
    "PasswordReset": obj(["username", "password_reset"], username=S, password_reset={"type": "boolean"}),
    "Tokens": obj(["access_token", "refresh_token", "id_token", "token_type", "expires_in"], access_token=S,
                  refresh_token=S, id_token=S, token_type={"const": "Bearer"}, expires_in={"type": "integer"}),
    "Profile": obj(["username", "email"], username=S, email=S, given_name=S, family_name=S, status=S,
                   signed_up_at=TIME),
    "Jwks": obj(["keys"], keys={"type": "array", "items": {"type": "object"}}),
    "Health": obj(["status"], status={"const": "ok"}),
    "Readiness": obj(["status"], status={"enum": ["ready", "unavailable"]}, checks={"type": "object"}),
    "ProblemType": obj(["type", "title"], type={"type": "string", "pattern": "^/problems/"}, title=S,
                       status={"type": "integer"}),
    "ProblemTypes": {"type": "object", "additionalProperties": ref("ProblemType")},
    "RegisterDevice": obj(["name"], name=string(64),
                          csr=string(16384, description="optional PKCS#10 CSR (PEM); the device keeps its key"),
                          correlation_ids={"type": "boolean", "default": False,
                                            "description": "the device echoes correlation_id, so calls may overlap"},
                          login={"enum": ["certificate", "password"], "default": "certificate",
                                 "description": "password: the device may also log in with username (its id) and"
                                                " the broker_password answered once, without a client certificate"}),
    "Reissue": obj([], csr=string(16384, description="optional PKCS#10 CSR (PEM)")),
    "Certificate": obj(["serial", "not_after"], serial=S, fingerprint_sha256=S, not_before=TIME, not_after=TIME,
                       pem=PEM),
    "Device": obj(["device_id", "name", "status"], device_id={"type": "string", "pattern": f"^{DEVICE_ID_SHAPE}$"},
                  name=S, status=S, connection={"enum": ["online", "offline"]}, last_seen=TIME,
                  correlation_ids={"type": "boolean"}, registered_at=TIME, updated_at=TIME,
                  login={"enum": ["certificate", "password"]}, password_set_at=TIME,
                  certificate={"oneOf": [ref("Certificate"), {"type": "null"}]}),
    "DevicePage": obj(["items", "total"], items={"type": "array", "items": ref("Device")},
                      total={"type": "integer"}, limit={"type": "integer"}, offset={"type": "integer"},
                      next=NULLABLE_S),
    "DeviceCredentials": obj(["device_id", "ca", "certificate"], device_id=S, name=S, ca=PEM, certificate=PEM,
                             private_key={"type": ["string", "null"], "description": "only when generated; shown once"},
                             certificate_info=ref("Certificate"), host=S,
                             mqtt_port={"type": "integer"}, amqp_port={"type": "integer"},
                             login={"enum": ["password"], "description": "only for password-login devices"},
                             username=S, broker_password={"type": "string", "description": "shown once"}),
    "BrokerPassword": obj(["device_id", "username", "broker_password"], device_id=S, name=S, username=S,
                          broker_password={"type": "string", "description": "shown once; the old one is refused"}),
    "Count": obj(["count"], count={"type": "integer"}),
    "Command": obj(["api"], api={"enum": list(DEVICE_APIS)},
                   params={"type": "object", "description": "the API's parameters, e.g. {number, value} for set_gpio"},
                   timeout={"type": "number", "minimum": 0.1, "maximum": 60},
                   wait={"type": "boolean", "default": True},
                   ttl={"type": "number", "minimum": 0, "maximum": 7 * 86400,
                         "description": "seconds a call to an offline device stays queued"}),
    **device_request_schemas(),
    "CallResult": obj(["command_id", "status"], command_id=S, status=S, value={}),
    "CommandStatus": obj(["command_id", "status"], command_id=S, device_id=S, device_name=S, api=S,
                         params={"type": "object"},
                         status={"enum": ["queued", "sent", "succeeded", "failed", "timed_out", "expired"]},
                         result={}, error=NULLABLE_S, requested_at=TIME, sent_at=TIME, completed_at=TIME),
    "NotificationRequest": obj(["recipient", "message"], recipient=string(64, description="an email address, an "
                                                                      "E.164 phone number or one of your device ids"),
                               message=string(64), timeout={"type": "number", "minimum": 0.1, "maximum": 60}),
    "NotificationAccepted": obj(["notification_id", "command_id", "state"], notification_id=S, command_id=S,
                                state={"const": "requested"}),
    "Notification": obj(["notification_id", "device_name", "channel", "recipient", "state", "attempts"],
                        notification_id=S, origin={"enum": ["device", "app"]}, device_id=S, device_name=S,
                        channel={"enum": ["email", "sms", "device", "unknown"]}, recipient=S,
                        message_preview={**S, "description": "the first 16 characters of the message"},
                        message_length={"type": "integer"}, command_id=NULLABLE_S,
                        state={"enum": ["requested", "sent", "failed", "refused"]}, attempts={"type": "integer"},
                        provider=NULLABLE_S, last_error=NULLABLE_S, refusal={"type": ["object", "null"]},
                        requested_at=TIME, sent_at=TIME, failed_at=TIME, refused_at=TIME, next_attempt_at=TIME,
                        updated_at=TIME),
    "NotificationPage": obj(["notifications", "next"], notifications={"type": "array", "items": ref("Notification")},
                            next=NULLABLE_S),
    "Problem": {**obj(["type", "title", "status"], type={"type": "string", "pattern": "^/problems/[a-z0-9-]+$"},
                      title=S, status={"type": "integer", "minimum": 400, "maximum": 599}, detail=S, instance=S,
                      request_id=S),
                "description": "RFC 9457 problem details; some types add members (field, retry_after, command_id)"},
    # libpyiotcloud v2
    "V2Token": obj(["access"], access=S, refresh=S, id=S),
    "V2Envelope": obj(["status", "message"], status={"enum": ["OK", "NG"]}, message=S),
    "V2Error": obj(["status", "message"], status={"const": "NG"}, message=S),
}


# -- libpyiotcloud v2 body fields ------------------------------------------------------------------
# Credentials travel in the body ({username, token {access, refresh, id}}), never in a header. v2
# clients send numbers as strings ("5"); a parameter several APIs share with different types (value)
# is described by the modern route.


def _v2_device_field(name: str) -> dict:
    params = [param for api in DEVICE_APIS.values() for param in api.params if param.name == name]
    schema = params[0].schema
    if any(param.schema != schema for param in params):
        return {"description": "as in the modern route"}
    if schema.get("type") == "integer":
        description = f"{params[0].hint} {schema['minimum']}..{schema['maximum']}"
        return {"type": ["integer", "string"], "description": description}
    return schema


V2_FIELDS = {"username": USERNAME, "password": string(256), "email": string(254), "givenname": string(128),
             "familyname": string(128), "confirmationcode": CODE, "token": ref("V2Token"), "devicename": string(64),
             "login": {"enum": ["certificate", "password"], "default": "certificate"},
             **{p.name: _v2_device_field(p.name) for api in DEVICE_APIS.values() for p in api.params}}
