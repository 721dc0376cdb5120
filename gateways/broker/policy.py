"""Broker access policy as pure functions: who may log in, and what each identity may touch.

RabbitMQ's HTTP auth backend asks four questions (user, vhost, resource, topic); each function below
answers one of them from plain values, so every rule is unit-tested without a broker.

Identities (the username is the client-certificate CN, except for the management admin):
- device: a registered id (the one rule of commands.domain.device_ids); MQTT client id must equal the
  CN; may read `<id>.#` and write `server.<id>.#`
  on `amq.topic`, and own only the queues `mqtt-subscription-<id>qos0|qos1`.
- service (e.g. `iotcloud-gateway`): AMQP only; publishes `<id>.<api>`, consumes `server.#` and the event
  exchange's `connection.#`, and owns queues named `iotcloud.*`.
- admin: the management-API login (password); no vhost access at all.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field

from commands.domain.device_ids import is_device_id

VHOST = "/"
TOPIC_EXCHANGE = "amq.topic"
EVENT_EXCHANGE = "amq.rabbitmq.event"
PERMISSIONS = frozenset({"configure", "write", "read"})
MQTT_QUEUE_PREFIX = "mqtt-subscription-"
MQTT_QUEUE_SUFFIXES = ("qos0", "qos1")
SERVICE_QUEUE_PREFIX = "iotcloud."
GATEWAY_SERVICE = "iotcloud-gateway"
API_SERVICE = "iotcloud-api"
CONTROL_EXCHANGE = "iotcloud.control"   # API -> gateway wake-ups ("new commands in the store")
RESULTS_EXCHANGE = "iotcloud.results"   # gateway -> API command outcomes
API_QUEUE_PREFIX = "iotcloud.api."

_ROUTING_WORD = re.compile(r"[A-Za-z0-9_-]{1,128}")

ALLOW = "allow"
DENY = "deny"


@dataclass(frozen=True, slots=True)
class Identities:
    """The non-device names the backend knows; none of them can ever be a device."""

    services: frozenset[str] = frozenset()
    admin_username: str | None = None
    admin_password: str | None = field(default=None, repr=False)

    def reserved(self, name: str) -> bool:
        return name in self.services or name == self.admin_username


def device_queue_names(device_id: str) -> frozenset[str]:
    """Exactly the MQTT plugin's queue names; a prefix rule would let device `ab` own device `abc`'s queue."""
    return frozenset(f"{MQTT_QUEUE_PREFIX}{device_id}{suffix}" for suffix in MQTT_QUEUE_SUFFIXES)


def user_decision(username: str, password: str | None, ids: Identities, registered: bool) -> str:
    """Login. Certificates carry no password; a password is accepted only for the management admin."""
    if password:
        if (ids.admin_username is not None and ids.admin_password and username == ids.admin_username
                and hmac.compare_digest(password.encode(), ids.admin_password.encode())):
            return f"{ALLOW} administrator"
        return DENY
    if username in ids.services:
        return ALLOW
    if ids.reserved(username) or not is_device_id(username):
        return DENY
    return ALLOW if registered else DENY


def vhost_decision(username: str, vhost: str, client_id: str | None, ids: Identities, registered: bool) -> bool:
    """Connection open. MQTT connections carry `client_id`: it must equal the certificate CN."""
    if vhost != VHOST or (ids.reserved(username) and username not in ids.services):
        return False
    if username in ids.services:
        return client_id is None
    if not is_device_id(username) or not registered:
        return False
    return client_id is None or client_id == username


def resource_decision(username: str, vhost: str, resource: str, name: str, permission: str,
                      client_id: str | None, ids: Identities) -> bool:
    if vhost != VHOST or permission not in PERMISSIONS:
        return False
    if username == API_SERVICE and username in ids.services:
        return _api_resource(resource, name, permission)
    if username in ids.services:
        return _service_resource(resource, name, permission)
    if ids.reserved(username) or not is_device_id(username):
        return False
    if client_id is not None and client_id != username:
        return False
    if resource == "exchange":
        # configure: the libpyiotcloud AMQP simulator re-declares amq.topic (the broker itself refuses
        # to delete amq.* exchanges); read/write are narrowed further by the topic rules.
        return name == TOPIC_EXCHANGE
    if resource == "queue":
        return name in device_queue_names(username)
    return False


def _api_resource(resource: str, name: str, permission: str) -> bool:
    """The REST API: wakes the gateway, hears outcomes on its own queues; never touches devices."""
    if resource == "exchange":
        return (name == CONTROL_EXCHANGE and permission in ("configure", "write")) or \
               (name == RESULTS_EXCHANGE and permission in ("configure", "read"))
    if resource == "queue":
        return name.startswith(API_QUEUE_PREFIX) and len(name) > len(API_QUEUE_PREFIX)
    return False


def _service_resource(resource: str, name: str, permission: str) -> bool:
    if resource == "exchange":
        if name == TOPIC_EXCHANGE:
            return permission in ("read", "write")
        if name == CONTROL_EXCHANGE:
            return permission in ("configure", "read")
        if name == RESULTS_EXCHANGE:
            return permission in ("configure", "write")
        return name == EVENT_EXCHANGE and permission == "read"
    if resource == "queue":
        return (name.startswith(SERVICE_QUEUE_PREFIX) and len(name) > len(SERVICE_QUEUE_PREFIX)
                and not name.startswith(API_QUEUE_PREFIX))
    return False


def topic_decision(username: str, vhost: str, exchange: str, permission: str, routing_key: str,
                   client_id: str | None, ids: Identities) -> bool:
    """Routing keys: the binding key for `read`, the published key for `write` (MQTT '/' is '.')."""
    if vhost != VHOST or permission not in ("read", "write"):
        return False
    if username == API_SERVICE and username in ids.services:
        return False  # the API publishes and reads only on fanout exchanges, never a device topic
    if username in ids.services:
        return _service_topic(exchange, permission, routing_key)
    if ids.reserved(username) or not is_device_id(username):
        return False
    if exchange != TOPIC_EXCHANGE or (client_id is not None and client_id != username):
        return False
    if permission == "read":
        return routing_key == username or routing_key.startswith(f"{username}.")
    return routing_key.startswith(f"server.{username}.") and len(routing_key) > len(username) + 8


def _service_topic(exchange: str, permission: str, routing_key: str) -> bool:
    words = routing_key.split(".")
    if exchange == EVENT_EXCHANGE:
        return permission == "read" and words[0] == "connection" and len(words) == 2 and \
            words[1] in ("#", "created", "closed")
    if exchange != TOPIC_EXCHANGE:
        return False
    if permission == "read":
        return words[0] == "server" and len(words) >= 2
    return (len(words) >= 2 and words[0] != "server" and is_device_id(words[0])
            and all(_ROUTING_WORD.fullmatch(w) for w in words[1:]))
