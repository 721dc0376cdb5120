"""Broker access policy as pure functions: who may log in, and what each identity may touch.

RabbitMQ's HTTP auth backend asks four questions (user, vhost, resource, topic); each function below
answers one of them from plain values, so every rule is unit-tested without a broker. Names, keys and
the services' grants come from topology.py, which also renders them as the regexes RabbitMQ applies
to the services' internal users.

Identities (the username is the client-certificate CN, except for the management admin):
- device: a registered id (the one rule of commands.domain.device_ids); the MQTT client id must equal
  the CN; may read `<id>.#` and write `server.<id>.#` on `amq.topic`, and own only the queues
  `mqtt-subscription-<id>qos0|qos1`.
- service (`iotcloud-gateway`, `iotcloud-api`): AMQP only; exactly its grants in topology.SERVICE_ACCESS.
- admin: the management-API login (password); no vhost access at all.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from commands.broker_passwords import broker_password_matches
from commands.domain.device_ids import is_device_id
from gateways.broker.topology import (ANSWER_WORD, PERMISSIONS, READ, TOPIC_EXCHANGE, VHOST, WRITE, device_queue_names,
                                      service_may_use_exchange, service_may_use_queue, service_may_use_topic)

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


def user_decision(username: str, password: str | None, ids: Identities, registered: bool,
                  password_hash: str | None = None) -> str:
    """Login. Certificates carry no password (`password` None); a password is accepted for the management
    admin and for a registered device registered for password login (`password_hash`), as itself only.
    An empty password is a password (PLAIN may send one) and never passes for a certificate login."""
    if password is not None:
        if (password and ids.admin_username is not None and ids.admin_password and username == ids.admin_username
                and hmac.compare_digest(password.encode(), ids.admin_password.encode())):
            return f"{ALLOW} administrator"
        if (registered and not ids.reserved(username) and is_device_id(username)
                and broker_password_matches(password_hash, password)):
            return ALLOW
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
    if username in ids.services:
        return _service_resource(username, resource, name, permission)
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


def _service_resource(service: str, resource: str, name: str, permission: str) -> bool:
    if resource == "exchange":
        return service_may_use_exchange(service, name, permission)
    if resource == "queue":
        return service_may_use_queue(service, name)
    return False


def topic_decision(username: str, vhost: str, exchange: str, permission: str, routing_key: str,
                   client_id: str | None, ids: Identities) -> bool:
    """Routing keys: the binding key for `read`, the published key for `write` (MQTT '/' is '.')."""
    if vhost != VHOST or permission not in (READ, WRITE):
        return False
    if username in ids.services:
        return service_may_use_topic(username, exchange, permission, routing_key)
    if ids.reserved(username) or not is_device_id(username):
        return False
    if exchange != TOPIC_EXCHANGE or (client_id is not None and client_id != username):
        return False
    if permission == READ:
        return routing_key == username or routing_key.startswith(f"{username}.")
    own_answers = f"{ANSWER_WORD}.{username}."
    return routing_key.startswith(own_answers) and len(routing_key) > len(own_answers)
