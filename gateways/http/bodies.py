"""Reading JSON bodies and fields with clear validation errors.

Bodies are bounded before any parsing: at most MAX_BODY bytes are read (also without a
Content-Length), and gateways.untrusted_json refuses deep nesting before json could recurse and
anything the event store or read models could not carry.
"""

from __future__ import annotations


import falcon

from commands.errors import ValidationFailed
from gateways.untrusted_json import MalformedPayload, load_bounded

MAX_BODY = 64 * 1024


def read_bounded(stream, content_length: int | None = None) -> bytes:
    """The raw body, or HTTPContentTooLarge once it passes MAX_BODY (the rest is never read)."""
    if content_length and content_length > MAX_BODY:
        raise falcon.HTTPContentTooLarge(description=f"bodies are limited to {MAX_BODY} bytes")
    raw = stream.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise falcon.HTTPContentTooLarge(description=f"bodies are limited to {MAX_BODY} bytes")
    return raw


def bounded_loads(text: str | bytes):
    """A request body as only what the event store and read models can carry (gateways.untrusted_json):
    MalformedPayload, a ValueError, for anything else, which falcon reports as a malformed body."""
    return load_bounded(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text),
                        MAX_BODY, "the body")


def json_body(req: falcon.Request, required: bool = True) -> dict:
    if req.content_length and req.content_length > MAX_BODY:
        raise falcon.HTTPContentTooLarge(description=f"bodies are limited to {MAX_BODY} bytes")
    if not req.content_length and not required:
        return {}
    if req.content_type is None or not req.content_type.startswith("application/json"):
        raise falcon.HTTPUnsupportedMediaType(description="send a JSON body with Content-Type: application/json")
    try:
        body = req.get_media()
    except falcon.MediaNotFoundError:
        if required:
            raise ValidationFailed("a JSON object body is required") from None
        return {}
    except falcon.MediaMalformedError as error:
        if isinstance(error.__cause__, MalformedPayload):
            raise ValidationFailed(str(error.__cause__)) from None
        raise ValidationFailed("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object")
    return body


def text_field(body: dict, name: str, required: bool = True, max_length: int = 4096) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ValidationFailed(f"'{name}' is required", field=name)
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"'{name}' must be a string", field=name)
    if len(value) > max_length:
        raise ValidationFailed(f"'{name}' is longer than {max_length} characters", field=name)
    return value


def number_param(req: falcon.Request, name: str, default, low, high, cast=int):
    """A numeric query parameter within [low, high], or `default` when absent."""
    raw = req.get_param(name)
    if raw is None:
        return default
    try:
        value = cast(raw)
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise ValidationFailed(f"query parameter '{name}' must be {kind}", field=name) from None
    if not low <= value <= high:
        raise ValidationFailed(f"query parameter '{name}' must be between {low:g} and {high:g}", field=name)
    return value
