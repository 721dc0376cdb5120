"""The OpenAPI 3.1 document, built from the same route table the app serves.

Both REST flavours are described closely enough to fuzz: each operation's body (with the length
caps the edge enforces), parameters, security and every status it can answer with. Modern errors
are RFC 9457 problem documents; libpyiotcloud v2 errors are the `{"status": "NG"}` envelope.
Component schemas are in openapi_schemas.py; every device-call entry is derived from the device-API
table (commands/device_apis.py) through device_resources.py.
"""

from __future__ import annotations

from commands.device_apis import DeviceApi
from gateways.http.device_resources import body_fields, device_resources, selectors, v2_fields
from gateways.http import openapi_history, openapi_webapp
from gateways.http.resources import admin, audit
from gateways.http.openapi_schemas import NULLABLE_S, PEM, S, SCHEMAS, V2_FIELDS, device_request_schema, ref, string

BODY = {400, 413, 415}       # invalid or malformed body, too large, not application/json
# device calls: bad params, no such device, over your share of waiting calls, failed / offline / timed out
CALL = {400, 404, 429, 502, 503, 504}
AUTH_LIMITS = {400, 413, 415, 429}
NOTIFYING = {403, 409, 422}  # trigger_notification: recipient not yours, a duplicate, invalid recipient/message


def device_summary(api: DeviceApi) -> str:
    """`get_rtc (epoch seconds)`, `set_gpio {value: 0|1}`, `trigger_notification {recipient, message}`."""
    fields = body_fields(api)
    if fields == ("value",):
        return f"{api.name} {{value: {api.param('value').hint}}}"
    if fields:
        return f"{api.name} {{{', '.join(fields)}}}"
    return f"{api.name} ({api.answer})" if api.answer else api.name


# (path, method) -> (tag, summary, request schema, {status: response schema or None}, error statuses)
OPERATIONS = {
    ("/healthz", "get"): ("service", "Liveness", None, {200: "Health"}, set()),
    ("/readyz", "get"): ("service", "Readiness: {status} only; operators (IOTCLOUD_OPERATORS) and admins also get"
                                    " store heads, projection positions and lag", None,
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
    ("/v1/auth/logout-everywhere", "post"): ("auth", "End all your sessions: every refresh and access token of "
                                                     "yours stops working (answered once that holds)", None,
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
    ("/v1/devices/{name}/password", "post"): ("devices", "Rotate a password-login device's broker password (shown"
                                              " once); the old one is refused and its connections closed",
                                              None, {200: "BrokerPassword"}, {401, 404, 409}),
    ("/v1/devices/{name}/commands", "post"): ("control", "Call any device API (api, params, timeout, wait, ttl)",
                                              "Command", {200: "CallResult", 202: "CallResult"},
                                              BODY | CALL | NOTIFYING | {401}),
    ("/v1/devices/{name}/notifications", "post"): (
        "notifications", "Ask the device to notify someone (email, E.164 phone, or one of your devices); it echoes "
        "the request, then the platform delivers it", "NotificationRequest", {202: "NotificationAccepted"},
        BODY | CALL | NOTIFYING | {401}),
    ("/v1/notifications", "get"): ("notifications", "Your notifications, newest first (filters: device, state, "
                                                    "channel; cursor paging)", None, {200: "NotificationPage"},
                                   {400, 401}),
    ("/v1/notifications/{notification_id}", "get"): ("notifications", "One of your notifications", None,
                                                     {200: "Notification"}, {401, 404}),
    ("/v1/commands/{command_id}", "get"): ("control", "Status of a device call: queued, sent, succeeded, failed, "
                                                      "timed_out, expired", None, {200: "CommandStatus"}, {401, 404}),
    **{(resource.modern_path, method): ("control", device_summary(api), device_request_schema(api),
                                        {200: "CallResult", 202: "CallResult"},
                                        CALL | {401} | (BODY if body_fields(api) else set())
                                        | (NOTIFYING if api.name == "trigger_notification" else set()))
       for resource in device_resources()
       for method, api in (("get", resource.read), ("put", resource.write)) if api},
    **openapi_history.OPERATIONS,
    **openapi_webapp.OPERATIONS,
    **audit.OPERATIONS,
    **admin.OPERATIONS,
}

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
    ("/devices/device", "post"): ("Register device; answers device {devicename, deviceid, cert, pkey, ca} (with"
                                  " login \"password\": also username and password, shown once)",
                                  (*_V2_SESSION, "devicename"), ("login",), {"device": {"type": "object"}}, V2_DEVICE),
    ("/devices/device", "delete"): ("Unregister device", (*_V2_SESSION, "devicename"), (), {}, V2_DEVICE),
    ("/devices/device", "patch"): ("Get device; answers device {devicename, deviceid, cert, pkey}",
                                   (*_V2_SESSION, "devicename"), (), {"device": {"type": "object"}}, V2_DEVICE),
    **{(resource.v2_path, method): (f"Device access: {resource.subject} ({role}); answers value",
                                    (*_V2_SESSION, "devicename", *v2_fields(api)), (), {"value": {}}, V2_CALL)
       for resource in device_resources()
       for methods, role, api in ((("post", "get"), "read", resource.read), (("put",), "write", resource.write))
       if api for method in methods},
    **openapi_history.V2,
}

STATUS_TEXT = {400: "Invalid or malformed request", 401: "Missing, invalid, expired or revoked credentials",
               403: "Not allowed (e.g. account not confirmed)", 404: "Not found", 409: "Conflict",
               413: "Body too large", 415: "Body is not application/json",
               422: "The notification cannot be sent (invalid-recipient, invalid-message)",
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
DEVICE_CALLS = {resource.modern_path: resource for resource in device_resources()}
PATH_PARAMETERS = {"name": string(64, description="device name"),
                   **{param.name: {**param.schema, "description": param.hint}
                      for resource in DEVICE_CALLS.values() for api in (resource.read, resource.write) if api
                      for param in api.params if param.name in selectors(api)},
                   "command_id": {"type": "string", "format": "uuid"}, "slug": {"type": "string"},
                   "notification_id": {"type": "string", "format": "uuid"},
                   "device_id": audit.DEVICE_ID, **admin.PATH_PARAMETERS}


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


NOTIFICATION_QUERY = [
    {"name": "device", "in": "query", "schema": string(64, description="device name")},
    {"name": "state", "in": "query", "schema": {"enum": ["requested", "sent", "failed", "refused"]}},
    {"name": "channel", "in": "query", "schema": {"enum": ["email", "sms", "device"]}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "cursor", "in": "query", "schema": string(200, description="`next` of the previous page")}]


def _parameters(path: str, method: str) -> list[dict]:
    params = [{"name": name, "in": "path", "required": True, "schema": schema}
              for name, schema in PATH_PARAMETERS.items() if "{" + name + "}" in path]
    if (path, method) == ("/v1/devices", "get"):
        params += [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                   {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 10**9}}]
    elif path in DEVICE_CALLS:
        params += [*DEVICE_CALL_QUERY, PREFER_ASYNC]
    elif path == "/v1/devices/{name}/commands":
        params.append(PREFER_ASYNC)
    elif (path, method) == ("/v1/notifications", "get"):
        params += NOTIFICATION_QUERY
    params += openapi_webapp.PARAMETERS.get((path, method), [])
    params += admin.PARAMETERS.get(path, []) if method == "get" else []
    return params + openapi_history.parameters(path) + audit.PARAMETERS.get(path, [])


def _v2_operation(path: str, method: str) -> dict:
    summary, required, optional, answers, errors = V2[(path, method)]
    body = {"type": "object", "required": list(required),
            "properties": {name: {**V2_FIELDS, **openapi_history.V2_FIELDS}[name] for name in (*required, *optional)}}
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
        "components": {"schemas": {**SCHEMAS, **openapi_history.SCHEMAS, **openapi_webapp.SCHEMAS, **audit.SCHEMAS,
                                   **admin.SCHEMAS},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }
