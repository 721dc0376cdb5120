"""What of a recipient may appear in logs: enough to tell messages apart, not the address."""

from __future__ import annotations


def masked(recipient: str) -> str:
    """`a***@example.com`, `+44***89`, `3f2a9c1e…` (a device id's first 8 characters)."""
    if not isinstance(recipient, str) or not recipient:
        return ""
    if "@" in recipient:
        local, _, domain = recipient.rpartition("@")
        return f"{local[:1]}***@{domain[:64]}"
    if recipient.startswith("+"):
        return f"{recipient[:3]}***{recipient[-2:]}"
    return f"{recipient[:8]}…"
