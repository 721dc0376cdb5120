"""The OpenAPI 3.1 document, built from the same route table the app serves.

Both REST flavours are described closely enough to fuzz: each operation's body (with the length
caps the edge enforces), parameters, security and every status it can answer with. Modern errors
are RFC 9457 problem documents; libpyiotcloud v2 errors are the `{"status": "NG"}` envelope.
"""

from __future__ import annotations

from commands.domain.device_ids import DEVICE_ID_SHAPE

S = {"type": "string"}
PEM = {"type": "string", "description": "PEM text"}
TIME = {"type": ["string", "null"], "description": "ISO 8601 date-time"}
NULLABLE_S = {"type": ["string", "null"]}


def _obj(required: list[str], **props) -> dict:
    return {"type": "object", "required": required, "properties": props}


def _text(max_length: int, min_length: int = 1, **extra) -> dict:
    return {"type": "string", "minLength": min_length, "maxLength": max_length, **extra}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


USERNAME, PASSWORD, EMAIL = _text(64), _text(256, 8), _text(254, format="email")
CODE = _text(16, description="the six-digit code from the email")
DEVICE_APIS = ["get_status", "set_status", "get_gpio", "set_gpio", "get_rtc", "set_rtc", "get_mac", "get_ip",
               "get_subnet", "get_gateway", "write_uart", "trigger_notification"]

SCHEMAS = {
    "SignUp": _obj(["username", "password", "email", "given_name", "family_name"], username=USERNAME,
                   password=PASSWORD, email=EMAIL, given_name=_text(128), family_name=_text(128)),
    "SignedUp": _obj(["username", "status"], username=S, status={"const": "UNCONFIRMED"}, next=S),
    "Confirm": _obj(["username", "code"], username=USERNAME, code=CODE),
    "Confirmed": _obj(["username", "status"], username=S, status={"const": "CONFIRMED"}),
    "Username": _obj(["username"], username=USERNAME),
    "CodeSent": _obj(["sent"], username=NULLABLE_S, sent={"type": "boolean"}, next=S),
    "Login": _obj(["username", "password"], username=USERNAME, password=_text(256)),
    "Refresh": _obj(["refresh_token"], refresh_token=_text(1024)),
    "ForgotPassword": {**_obj([], username=USERNAME, email=EMAIL),
                       "description": "username or email (at least one)"},
    "ResetPassword": {**_obj(["code", "password"], username=USERNAME, email=EMAIL, code=CODE, password=PASSWORD),
                      "description": "username or email (at least one), as given to forgot-password"},
    "PasswordReset": _obj(["username", "password_reset"], username=S, password_reset={"type": "boolean"}),
    "Tokens": _obj(["access_token", "refresh_token", "id_token", "token_type", "expires_in"], access_token=S,
                   refresh_token=S, id_token=S, token_type={"const": "Bearer"}, expires_in={"type": "integer"}),
    "Profile": _obj(["username", "email"], username=S, email=S, given_name=S, family_name=S, status=S,
                    signed_up_at=TIME),
    "Jwks": _obj(["keys"], keys={"type": "array", "items": {"type": "object"}}),
    "Health": _obj(["status"], status={"const": "ok"}),
    "Readiness": _obj(["status"], status={"enum": ["ready", "unavailable"]}, checks={"type": "object"}),
    "ProblemType": _obj(["type", "title"], type={"type": "string", "pattern": "^/problems/"}, title=S,
                        status={"type": "integer"}),
    "ProblemTypes": {"type": "object", "additionalProperties": ref("ProblemType")},
    "RegisterDevice": _obj(["name"], name=_text(64),
                           csr=_text(16384, description="optional PKCS#10 CSR (PEM); the device keeps its key"),
                           correlation_ids={"type": "boolean", "default": False,
                                            "description": "the device echoes correlation_id, so calls may overlap"}),
    "Reissue": _obj([], csr=_text(16384, description="optional PKCS#10 CSR (PEM)")),
    "Certificate": _obj(["serial", "not_after"], serial=S, fingerprint_sha256=S, not_before=TIME, not_after=TIME,
                        pem=PEM),
    "Device": _obj(["device_id", "name", "status"], device_id={"type": "string", "pattern": f"^{DEVICE_ID_SHAPE}$"},
                   name=S, status=S, connection={"enum": ["online", "offline"]}, last_seen=TIME,
                   correlation_ids={"type": "boolean"}, registered_at=TIME, updated_at=TIME,
                   certificate={"oneOf": [ref("Certificate"), {"type": "null"}]}),
    "DevicePage": _obj(["items", "total"], items={"type": "array", "items": ref("Device")},
                       total={"type": "integer"}, limit={"type": "integer"}, offset={"type": "integer"},
                       next=NULLABLE_S),
    "DeviceCredentials": _obj(["device_id", "ca", "certificate"], device_id=S, name=S, ca=PEM, certificate=PEM,
                              private_key={"type": ["string", "null"], "description": "only when generated; shown once"},
                              certificate_info=ref("Certificate"), host=S,
                              mqtt_port={"type": "integer"}, amqp_port={"type": "integer"}),
    "Count": _obj(["count"], count={"type": "integer"}),
    "Command": _obj(["api"], api={"enum": DEVICE_APIS},
                    params={"type": "object", "description": "the API's parameters, e.g. {number, value} for set_gpio"},
                    timeout={"type": "number", "minimum": 0.1, "maximum": 60},
                    wait={"type": "boolean", "default": True},
                    ttl={"type": "number", "minimum": 0, "maximum": 7 * 86400,
                         "description": "seconds a call to an offline device stays queued"}),
    "Value": _obj(["value"], value={"description": "restart (status), 0|1 (gpio), epoch seconds (rtc), text (uart)"}),
    "Notification": _obj(["recipient", "message"], recipient=_text(64), message=_text(64)),
    "CallResult": _obj(["command_id", "status"], command_id=S, status=S, value={}),
    "CommandStatus": _obj(["command_id", "status"], command_id=S, device_id=S, device_name=S, api=S,
                          params={"type": "object"},
                          status={"enum": ["queued", "sent", "succeeded", "failed", "timed_out", "expired"]},
                          result={}, error=NULLABLE_S, requested_at=TIME, sent_at=TIME, completed_at=TIME),
    "Problem": {**_obj(["type", "title", "status"], type={"type": "string", "pattern": "^/problems/[a-z0-9-]+$"},
                       title=S, status={"type": "integer", "minimum": 400, "maximum": 599}, detail=S, instance=S,
                       request_id=S),
                "description": "RFC 9457 problem details; some types add members (field, retry_after, command_id)"},
    # libpyiotcloud v2
    "V2Token": _obj(["access"], access=S, refresh=S, id=S),
    "V2Envelope": _obj(["status", "message"], status={"enum": ["OK", "NG"]}, message=S),
    "V2Error": _obj(["status", "message"], status={"const": "NG"}, message=S),
}

BODY = {400, 413, 415}       # invalid or malformed body, too large, not application/json
# device calls: bad params, no such device, over your share of waiting calls, failed / offline / timed out
CALL = {400, 404, 429, 502, 503, 504}
AUTH_LIMITS = {400, 413, 415, 429}

# (path, method) -> (tag, summary, request schema, {status: response schema or None}, error statuses)
OPERATIONS = {
    ("/healthz", "get"): ("service", "Liveness", None, {200: "Health"}, set()),
    ("/readyz", "get"): ("service", "Readiness: {status} only; operators (IOTCLOUD_OPERATORS) also get store heads"
                                    " and projection positions", None,
                         {200: "Readiness"}, set()),
    ("/problems", "get"): ("service", "Every problem type this API answers with", None, {200: "ProblemTypes"}, set()),
    ("/problems/{slug}", "get"): ("service", "One problem type", None, {200: "ProblemType"}, {404}),
    ("/.well-known/jwks.json", "get"): ("auth", "Public keys that sign access tokens", None, {200: "Jwks"}, set()),
    ("/v1/auth/signup", "post"): ("auth", "Sign up; a confirmation code is sent by email", "SignUp",
                                  {201: "SignedUp"}, AUTH_LIMITS | {409}),
    ("/v1/auth/confirm", "post"): ("auth", "Confirm the account with the emailed code", "Confirm",
                                   {200: "Confirmed"}, AUTH_LIMITS | {404, 409}),
    ("/v1/auth/resend-code", "post"): ("auth", "Send a new confirmation code", "Username", {202: "CodeSent"},
                                       AUTH_LIMITS | {404, 409}),
    ("/v1/auth/login", "post"): ("auth", "Log in: short-lived access token and rotating refresh token", "Login",
                                 {200: "Tokens"}, AUTH_LIMITS | {401, 403}),
    ("/v1/auth/refresh", "post"): ("auth", "Exchange a refresh token (rotated on every use)", "Refresh",
                                   {200: "Tokens"}, AUTH_LIMITS | {401}),
    ("/v1/auth/logout", "post"): ("auth", "End this session; its refresh and access tokens stop working", None,
                                  {204: None}, {401}),
    ("/v1/auth/forgot-password", "post"): ("auth", "Email a password-reset code", "ForgotPassword",
                                           {202: "CodeSent"}, AUTH_LIMITS | {404}),
    ("/v1/auth/reset-password", "post"): ("auth", "Set a new password with the emailed code", "ResetPassword",
                                          {200: "PasswordReset"}, AUTH_LIMITS | {404, 409}),
    ("/v1/me", "get"): ("auth", "Your profile", None, {200: "Profile"}, {401, 404}),
    ("/v1/ca", "get"): ("devices", "The platform CA certificate (PEM) devices verify the broker with", None,
                        {200: "pem"}, set()),
    ("/v1/devices", "get"): ("devices", "List your devices, paged (limit, offset)", None, {200: "DevicePage"},
                             {400, 401}),
    ("/v1/devices", "post"): ("devices", "Register a device: new key pair and certificate, or sign your CSR",
                              "RegisterDevice", {201: "DeviceCredentials"}, BODY | {401, 409}),
    ("/v1/devices/_count", "get"): ("devices", "How many devices you have", None, {200: "Count"}, {401}),
    ("/v1/devices/{name}", "get"): ("devices", "One device by name", None, {200: "Device"}, {401, 404}),
    ("/v1/devices/{name}", "delete"): ("devices", "Unregister a device; its certificate stops working", None,
                                       {204: None}, {401, 404, 409}),
    ("/v1/devices/{name}/certificate", "post"): ("devices", "Reissue the device certificate", "Reissue",
                                                 {200: "DeviceCredentials"}, BODY | {401, 404, 409}),
    ("/v1/devices/{name}/commands", "post"): ("control", "Call any device API (api, params, timeout, wait, ttl)",
                                              "Command", {200: "CallResult", 202: "CallResult"}, BODY | CALL | {401}),
    ("/v1/commands/{command_id}", "get"): ("control", "Status of a device call: queued, sent, succeeded, failed, "
                                                      "timed_out, expired", None, {200: "CommandStatus"}, {401, 404}),
    **{(f"/v1/devices/{{name}}/{api}", method): (
        "control", f"{name}{' ' + value if value else ''}", request, {200: "CallResult", 202: "CallResult"},
        CALL | {401} | (BODY if request else set()))
       for api, method, name, request, value in (
           ("status", "get", "get_status", None, ""), ("status", "put", "set_status", "Value", "{value: restart}"),
           ("gpio/{number}", "get", "get_gpio", None, ""), ("gpio/{number}", "put", "set_gpio", "Value", "{value: 0|1}"),
           ("rtc", "get", "get_rtc (epoch seconds)", None, ""),
           ("rtc", "put", "set_rtc", "Value", "{value: epoch seconds}"),
           ("mac", "get", "get_mac", None, ""), ("ip", "get", "get_ip", None, ""),
           ("subnet", "get", "get_subnet", None, ""), ("gateway", "get", "get_gateway", None, ""),
           ("uart", "put", "write_uart", "Value", "{value: text}"),
           ("notification", "put", "trigger_notification", "Notification", "{recipient, message}"))},
}

# libpyiotcloud v2: credentials travel in the body ({username, token {access, refresh, id}}), never in a header.
_V2_FIELDS = {"username": USERNAME, "password": _text(256), "email": _text(254), "givenname": _text(128),
              "familyname": _text(128), "confirmationcode": CODE, "token": ref("V2Token"), "devicename": _text(64),
              "number": {"type": ["integer", "string"], "description": "GPIO number 0..255"},
              "value": {"description": "as in the modern route"}, "recipient": _text(64), "message": _text(64)}
_V2_SESSION = ("username", "token")
V2_AUTH = {400, 401, 409, 413, 429}
V2_DEVICE = {400, 401, 409, 413, 429}
V2_CALL = {400, 401, 413, 429, 502, 503, 504}

# (path, method) -> (summary, required body fields, optional body fields, answer fields, error statuses)
V2 = {
    ("/user/signup", "post"): ("Sign up", ("username", "password", "email", "givenname", "familyname"), (),
                               {}, V2_AUTH),
    ("/user/confirm_signup", "post"): ("Confirm sign-up", ("username", "confirmationcode"), (), {}, V2_AUTH),
    ("/user/resend_confirmation_code", "post"): ("Resend the confirmation code", ("username",), (), {}, V2_AUTH),
    ("/user/forgot_password", "post"): ("Forgot password; answers the username", ("email",), (),
                                        {"username": NULLABLE_S}, V2_AUTH),
    ("/user/confirm_forgot_password", "post"): ("Reset password", ("username", "confirmationcode", "password"), (),
                                                {}, V2_AUTH),
    ("/user/login", "post"): ("Log in; answers token {access, refresh, id}", ("username", "password"), (),
                              {"token": ref("V2Token")}, V2_AUTH),
    ("/user/logout", "post"): ("Log out", _V2_SESSION, (), {}, V2_AUTH),
    ("/user", "post"): ("Profile; answers info", _V2_SESSION, (), {"info": {"type": "object"}}, V2_AUTH),
    ("/user", "get"): ("Profile (credentials in a GET body); answers info", _V2_SESSION, (),
                       {"info": {"type": "object"}}, V2_AUTH),
    ("/devices", "post"): ("List devices; answers devices [{devicename, deviceid, cert, pkey}]", _V2_SESSION, (),
                           {"devices": {"type": "array", "items": {"type": "object"}}}, V2_DEVICE),
    ("/devices", "get"): ("List devices (credentials in a GET body)", _V2_SESSION, (),
                          {"devices": {"type": "array", "items": {"type": "object"}}}, V2_DEVICE),
    ("/devices/device", "post"): ("Register device; answers device {devicename, deviceid, cert, pkey, ca}",
                                  (*_V2_SESSION, "devicename"), (), {"device": {"type": "object"}}, V2_DEVICE),
    ("/devices/device", "delete"): ("Unregister device", (*_V2_SESSION, "devicename"), (), {}, V2_DEVICE),
    ("/devices/device", "patch"): ("Get device; answers device {devicename, deviceid, cert, pkey}",
                                   (*_V2_SESSION, "devicename"), (), {"device": {"type": "object"}}, V2_DEVICE),
    **{(f"/devices/device/{api}", method): (
        f"Device access: {api} ({'write' if method == 'put' else 'read'}); answers value",
        (*_V2_SESSION, "devicename", *fields), (), {"value": {}}, V2_CALL)
       for api, method, fields in (
           ("status", "post", ()), ("status", "get", ()), ("status", "put", ("value",)),
           ("gpio", "post", ("number",)), ("gpio", "get", ("number",)), ("gpio", "put", ("number", "value")),
           ("rtc", "post", ()), ("rtc", "get", ()), ("rtc", "put", ("value",)),
           ("mac", "post", ()), ("mac", "get", ()), ("ip", "post", ()), ("ip", "get", ()),
           ("subnet", "post", ()), ("subnet", "get", ()), ("gateway", "post", ()), ("gateway", "get", ()),
           ("uart", "put", ("value",)), ("notification", "put", ("recipient", "message")))},
}

STATUS_TEXT = {400: "Invalid or malformed request", 401: "Missing, invalid, expired or revoked credentials",
               403: "Not allowed (e.g. account not confirmed)", 404: "Not found", 409: "Conflict",
               413: "Body too large", 415: "Body is not application/json",
               429: "Too many attempts; retry after Retry-After seconds",
               502: "The device answered badly (device-call-failed)", 503: "The device is offline (device-offline)",
               504: "The device did not answer in time (device-timeout); poll the command"}
REQUEST_ID = {"X-Request-ID": {"description": "this request's id (echoed when the client sent a safe one)",
                               "required": True, "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}}}
DEVICE_CALL_QUERY = [
    {"name": "timeout", "in": "query", "schema": {"type": "number", "minimum": 0.1, "maximum": 60},
     "description": "seconds the device has to answer"},
    {"name": "wait", "in": "query", "schema": {"type": "boolean", "default": True},
     "description": "false: answer 202 with the command id at once"},
    {"name": "ttl", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 7 * 86400},
     "description": "seconds a call to an offline device stays queued"},
]
PREFER_ASYNC = {"name": "Prefer", "in": "header", "required": False, "schema": {"enum": ["respond-async"]},
                "description": "over your share of waiting calls, accept the call as wait=false (202) instead of 429"}
# Unauthenticated routes are capped per client address (/problems/too-many-concurrent-requests).
UNCAPPED = {"/healthz", "/readyz"}
PATH_PARAMETERS = {"name": _text(64, description="device name"),
                   "number": {"type": "integer", "minimum": 0, "maximum": 255, "description": "GPIO number"},
                   "command_id": {"type": "string", "format": "uuid"}, "slug": {"type": "string"}}


def _answer(description: str, schema: dict | None, media: str = "application/json", headers: dict | None = None):
    answer = {"description": description, "headers": {**REQUEST_ID, **(headers or {})}}
    if schema is not None:
        answer["content"] = {media: {"schema": schema}}
    return answer


def _error(status: int) -> dict:
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = {"required": True, "schema": S}
    if status == 429:
        headers["Retry-After"] = {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}
    return _answer(STATUS_TEXT[status], ref("Problem"), "application/problem+json", headers)


def _parameters(path: str, method: str) -> list[dict]:
    params = [{"name": name, "in": "path", "required": True, "schema": schema}
              for name, schema in PATH_PARAMETERS.items() if "{" + name + "}" in path]
    if (path, method) == ("/v1/devices", "get"):
        params += [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                   {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 10**9}}]
    elif path.startswith("/v1/devices/{name}/") and not path.endswith(("/commands", "/certificate")):
        params += [*DEVICE_CALL_QUERY, PREFER_ASYNC]
    elif path == "/v1/devices/{name}/commands":
        params.append(PREFER_ASYNC)
    return params


def _v2_operation(path: str, method: str) -> dict:
    summary, required, optional, answers, errors = V2[(path, method)]
    body = {"type": "object", "required": list(required),
            "properties": {name: _V2_FIELDS[name] for name in (*required, *optional)}}
    ok = {"allOf": [ref("V2Envelope"), {"type": "object", "required": list(answers), "properties": answers}]}
    return {"tags": ["libpyiotcloud v2"], "summary": summary,
            "operationId": "v2" + f"{method}{path}".replace("/", "_"),
            "description": "libpyiotcloud v2: credentials are {username, token} in the body; errors are the NG "
                           "envelope with the seed's status codes.",
            "security": [],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": _answer("OK envelope", ok),
                          **{str(status): _answer(STATUS_TEXT[status], ref("V2Error")) for status in sorted(errors)}}}


def _operation(path: str, method: str, public: bool) -> dict:
    if (path, method) in V2:
        return _v2_operation(path, method)
    tag, summary, request, answers, errors = OPERATIONS[(path, method)]
    responses = {}
    for status, schema in answers.items():
        if schema == "pem":
            responses[str(status)] = _answer(summary, PEM, "application/x-pem-file")
            continue
        location = {"Location": {"schema": S}} if status in (201, 202) else {}
        responses[str(status)] = _answer(summary, ref(schema) if schema else None, headers=location)
    errors = errors | ({401} if not public else ({429} if path not in UNCAPPED else set()))
    responses.update({str(status): _error(status) for status in sorted(errors)})
    op = {"tags": [tag], "summary": summary,
          "operationId": f"{method}{path}".replace("/", "_").replace("{", "").replace("}", ""),
          "responses": responses, "security": [] if public else [{"bearer": []}]}
    if request:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(request)}}}
    params = _parameters(path, method)
    if params:
        op["parameters"] = params
    return op


def build_document(routes, settings) -> dict:
    """Documents every served route; a route without an entry here raises KeyError at start-up."""
    paths: dict[str, dict] = {}
    for route in routes:
        for method in route.methods():
            paths.setdefault(route.path, {})[method] = _operation(route.path, method,
                                                                  getattr(route.resource, "public", False))
    paths["/openapi.json"] = {"get": {"tags": ["service"], "summary": "This document", "security": [],
                                      "responses": {"200": _answer("OpenAPI 3.1", {"type": "object"})}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "iotcloud REST API", "version": "1.0.0",
                 "description": "Commands append domain events; queries read projections. Errors are RFC 9457 "
                                "problem details with stable `type` URIs under /problems/; the libpyiotcloud v2 "
                                "routes answer with their {status, message} envelope instead."},
        "servers": [{"url": settings.api_url}],
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }
