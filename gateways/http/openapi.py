"""The OpenAPI 3.1 document, built from the same route table the app serves."""

from __future__ import annotations

S = {"type": "string"}
PEM = {"type": "string", "description": "PEM text"}


def _obj(required: list[str], **props) -> dict:
    return {"type": "object", "required": required, "properties": props}


SCHEMAS = {
    "SignUp": _obj(["username", "password", "email", "given_name", "family_name"], username=S,
                   password={"type": "string", "minLength": 8}, email={"type": "string", "format": "email"},
                   given_name=S, family_name=S),
    "Confirm": _obj(["username", "code"], username=S, code=S),
    "Username": _obj(["username"], username=S),
    "Login": _obj(["username", "password"], username=S, password=S),
    "Refresh": _obj(["refresh_token"], refresh_token=S),
    "ForgotPassword": _obj([], username=S, email=S),
    "ResetPassword": _obj(["code", "password"], username=S, email=S, code=S, password=S),
    "Tokens": _obj(["access_token", "refresh_token", "id_token", "token_type", "expires_in"], access_token=S,
                   refresh_token=S, id_token=S, token_type=S, expires_in={"type": "integer"}),
    "Profile": _obj(["username", "email"], username=S, email=S, given_name=S, family_name=S, status=S),
    "RegisterDevice": _obj(["name"], name={"type": "string", "maxLength": 64},
                           csr={"type": "string", "description": "optional PKCS#10 CSR (PEM); the device keeps its key"},
                           correlation_ids={"type": "boolean", "default": False,
                                            "description": "the device echoes correlation_id, so calls may overlap"}),
    "Reissue": _obj([], csr=S),
    "Certificate": _obj(["serial", "not_after"], serial=S, fingerprint_sha256=S, not_before=S, not_after=S, pem=PEM),
    "Device": _obj(["device_id", "name", "status"], device_id={"type": "string", "pattern": "^[0-9a-f]{40}$"},
                   name=S, status=S, connection={"enum": ["online", "offline"]}, last_seen=S,
                   correlation_ids={"type": "boolean"}, registered_at=S, updated_at=S,
                   certificate={"$ref": "#/components/schemas/Certificate"}),
    "DevicePage": _obj(["items", "total"], items={"type": "array", "items": {"$ref": "#/components/schemas/Device"}},
                       total={"type": "integer"}, limit={"type": "integer"}, offset={"type": "integer"},
                       next={"type": ["string", "null"]}),
    "DeviceCredentials": _obj(["device_id", "ca", "certificate"], device_id=S, name=S, ca=PEM, certificate=PEM,
                              private_key={"type": ["string", "null"], "description": "only when generated; shown once"},
                              certificate_info={"$ref": "#/components/schemas/Certificate"}, host=S,
                              mqtt_port={"type": "integer"}, amqp_port={"type": "integer"}),
    "Count": _obj(["count"], count={"type": "integer"}),
    "Command": _obj(["api"], api={"enum": ["get_status", "set_status", "get_gpio", "set_gpio", "get_rtc", "set_rtc",
                                            "get_mac", "get_ip", "get_subnet", "get_gateway", "write_uart",
                                            "trigger_notification"]},
                    params={"type": "object"}, timeout={"type": "number", "maximum": 60},
                    wait={"type": "boolean", "default": True},
                    ttl={"type": "number", "description": "seconds a call to an offline device stays queued"}),
    "Value": _obj(["value"], value={}),
    "Notification": _obj(["recipient", "message"], recipient=S, message=S),
    "CallResult": _obj(["command_id", "status"], command_id=S, status=S, value={}),
    "CommandStatus": _obj(["command_id", "status"], command_id=S, device_id=S, device_name=S, api=S, params={"type": "object"},
                          status={"enum": ["queued", "sent", "succeeded", "failed", "timed_out", "expired"]},
                          result={}, error={"type": ["string", "null"]}, requested_at=S, sent_at=S, completed_at=S),
    "Problem": _obj(["type", "title", "status"], type=S, title=S, status={"type": "integer"}, detail=S,
                    instance=S, request_id=S),
    "V2Request": {"type": "object", "description": "libpyiotcloud v2 body: username, token {access, refresh, id} and route fields"},
    "V2Envelope": _obj(["status", "message"], status={"enum": ["OK", "NG"]}, message=S),
}

# (path, method) -> (tag, summary, request schema, success status, response schema)
OPERATIONS = {
    ("/healthz", "get"): ("service", "Liveness", None, 200, None),
    ("/readyz", "get"): ("service", "Readiness: event store, read store and projection positions", None, 200, None),
    ("/problems", "get"): ("service", "Every problem type this API answers with", None, 200, None),
    ("/problems/{slug}", "get"): ("service", "One problem type", None, 200, None),
    ("/.well-known/jwks.json", "get"): ("auth", "Public keys that sign access tokens", None, 200, None),
    ("/v1/auth/signup", "post"): ("auth", "Sign up; a confirmation code is sent by email", "SignUp", 201, None),
    ("/v1/auth/confirm", "post"): ("auth", "Confirm the account with the emailed code", "Confirm", 200, None),
    ("/v1/auth/resend-code", "post"): ("auth", "Send a new confirmation code", "Username", 202, None),
    ("/v1/auth/login", "post"): ("auth", "Log in: short-lived access token and rotating refresh token", "Login", 200, "Tokens"),
    ("/v1/auth/refresh", "post"): ("auth", "Exchange a refresh token (rotated on every use)", "Refresh", 200, "Tokens"),
    ("/v1/auth/logout", "post"): ("auth", "End this session; its refresh and access tokens stop working", None, 204, None),
    ("/v1/auth/forgot-password", "post"): ("auth", "Email a password-reset code", "ForgotPassword", 202, None),
    ("/v1/auth/reset-password", "post"): ("auth", "Set a new password with the emailed code", "ResetPassword", 200, None),
    ("/v1/me", "get"): ("auth", "Your profile", None, 200, "Profile"),
    ("/v1/ca", "get"): ("devices", "The platform CA certificate (PEM) devices verify the broker with", None, 200, None),
    ("/v1/devices", "get"): ("devices", "List your devices, paged (limit, offset)", None, 200, "DevicePage"),
    ("/v1/devices", "post"): ("devices", "Register a device: new key pair and certificate, or sign your CSR", "RegisterDevice", 201, "DeviceCredentials"),
    ("/v1/devices/_count", "get"): ("devices", "How many devices you have", None, 200, "Count"),
    ("/v1/devices/{name}", "get"): ("devices", "One device by name", None, 200, "Device"),
    ("/v1/devices/{name}", "delete"): ("devices", "Unregister a device; its certificate stops working", None, 204, None),
    ("/v1/devices/{name}/certificate", "post"): ("devices", "Reissue the device certificate", "Reissue", 200, "DeviceCredentials"),
    ("/v1/devices/{name}/commands", "post"): ("control", "Call any device API (api, params, timeout, wait, ttl)", "Command", 200, "CallResult"),
    ("/v1/commands/{command_id}", "get"): ("control", "Status of a device call: queued, sent, succeeded, failed, timed_out, expired", None, 200, "CommandStatus"),
    ("/v1/devices/{name}/status", "get"): ("control", "get_status", None, 200, "CallResult"),
    ("/v1/devices/{name}/status", "put"): ("control", "set_status {value: restart}", "Value", 200, "CallResult"),
    ("/v1/devices/{name}/gpio/{number}", "get"): ("control", "get_gpio", None, 200, "CallResult"),
    ("/v1/devices/{name}/gpio/{number}", "put"): ("control", "set_gpio {value: 0|1}", "Value", 200, "CallResult"),
    ("/v1/devices/{name}/rtc", "get"): ("control", "get_rtc (epoch seconds)", None, 200, "CallResult"),
    ("/v1/devices/{name}/rtc", "put"): ("control", "set_rtc {value: epoch seconds}", "Value", 200, "CallResult"),
    ("/v1/devices/{name}/mac", "get"): ("control", "get_mac", None, 200, "CallResult"),
    ("/v1/devices/{name}/ip", "get"): ("control", "get_ip", None, 200, "CallResult"),
    ("/v1/devices/{name}/subnet", "get"): ("control", "get_subnet", None, 200, "CallResult"),
    ("/v1/devices/{name}/gateway", "get"): ("control", "get_gateway", None, 200, "CallResult"),
    ("/v1/devices/{name}/uart", "put"): ("control", "write_uart {value: text}", "Value", 200, "CallResult"),
    ("/v1/devices/{name}/notification", "put"): ("control", "trigger_notification {recipient, message}", "Notification", 200, "CallResult"),
}
V2 = {
    ("/user/signup", "post"): "Sign up (username, password, email, givenname, familyname)",
    ("/user/confirm_signup", "post"): "Confirm sign-up (username, confirmationcode)",
    ("/user/resend_confirmation_code", "post"): "Resend the confirmation code (username)",
    ("/user/forgot_password", "post"): "Forgot password (email); answers username",
    ("/user/confirm_forgot_password", "post"): "Reset password (username, confirmationcode, password)",
    ("/user/login", "post"): "Log in (username, password); answers token {access, refresh, id}",
    ("/user/logout", "post"): "Log out (username, token)",
    ("/user", "post"): "Profile (username, token); answers info",
    ("/user", "get"): "Profile (username, token in a GET body); answers info",
    ("/devices", "post"): "List devices (username, token); answers devices [{devicename, deviceid, cert, pkey}]",
    ("/devices", "get"): "List devices (username, token in a GET body)",
    ("/devices/device", "post"): "Register device (devicename); answers device {devicename, deviceid, cert, pkey, ca}",
    ("/devices/device", "delete"): "Unregister device (devicename)",
    ("/devices/device", "patch"): "Get device (devicename); answers device {devicename, deviceid, cert, pkey}",
    **{(f"/devices/device/{api}", method): f"Device access: {api} ({'read' if method != 'put' else 'write'}); answers value"
       for api, methods in (("status", ("post", "get", "put")), ("gpio", ("post", "get", "put")),
                            ("rtc", ("post", "get", "put")), ("mac", ("post", "get")), ("ip", ("post", "get")),
                            ("subnet", ("post", "get")), ("gateway", ("post", "get")), ("uart", ("put",)),
                            ("notification", ("put",)))
       for method in methods},
}

PUBLIC_TAGS = {"service"}


def _operation(path: str, method: str, public: bool) -> dict:
    ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
    problem = {"description": "Problem details", "content": {"application/problem+json": {"schema": ref("Problem")}}}
    if (path, method) in V2:
        return {"tags": ["libpyiotcloud v2"], "summary": V2[(path, method)],
                "requestBody": {"content": {"application/json": {"schema": ref("V2Request")}}},
                "responses": {"200": {"description": "OK envelope", "content": {"application/json": {"schema": ref("V2Envelope")}}},
                              "4XX": {"description": "NG envelope", "content": {"application/json": {"schema": ref("V2Envelope")}}}}}
    tag, summary, request, status, response = OPERATIONS[(path, method)]
    success = {"description": summary}
    if response:
        success["content"] = {"application/json": {"schema": ref(response)}}
    op = {"tags": [tag], "summary": summary, "operationId": f"{method}{path}".replace("/", "_").replace("{", "").replace("}", ""),
          "responses": {str(status): success, "4XX": problem, "5XX": problem}}
    if request:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(request)}}}
    params = [p for p in ("name", "number", "command_id") if "{" + p + "}" in path]
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": S} for p in params]
    if not public:
        op["security"] = [{"bearer": []}]
    return op


def build_document(routes, settings) -> dict:
    """Documents every served route; a route without an entry here raises KeyError at start-up."""
    paths: dict[str, dict] = {}
    for route in routes:
        for method in route.methods():
            paths.setdefault(route.path, {})[method] = _operation(route.path, method,
                                                                  getattr(route.resource, "public", False))
    paths["/openapi.json"] = {"get": {"tags": ["service"], "summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "iotcloud REST API", "version": "1.0.0",
                 "description": "Commands append domain events; queries read projections. Errors are RFC 9457 "
                                "problem details with stable `type` URIs under /problems/."},
        "servers": [{"url": settings.api_url}],
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }
