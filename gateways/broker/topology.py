"""The broker topology, stated once: exchanges, queues, routing keys, and what each platform service
may do with them.

Read by the auth backend's policy (policy.py), by the services' internal-user permission regexes
(SERVICE_PERMISSIONS, provisioned by iotcloud/broker.py), by the device gateway
(gateways/devices/broker_link.py) and by the REST API (gateways/http/outcomes.py). A new platform
exchange is one `shared_exchange(...)` line below: every service declares it, and the publisher's
and the consumer's permissions follow from that line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from commands.domain.device_ids import DEVICE_ID_SHAPE, is_device_id

VHOST = "/"
CONFIGURE, WRITE, READ = "configure", "write", "read"
PERMISSIONS = frozenset({CONFIGURE, WRITE, READ})

# Platform services log in with their own certificates; none of these names is a device id.
GATEWAY_SERVICE = "iotcloud-gateway"
API_SERVICE = "iotcloud-api"
NOTIFIER_SERVICE = "iotcloud-notifier"

# -- exchanges ------------------------------------------------------------------------------------

TOPIC_EXCHANGE = "amq.topic"           # devices: MQTT topic a/b/c is routing key a.b.c here
EVENT_EXCHANGE = "amq.rabbitmq.event"  # connection.created / connection.closed: presence


@dataclass(frozen=True, slots=True)
class SharedExchange:
    """A fanout exchange of the platform's own: one service publishes, another consumes."""

    name: str
    publisher: str
    consumer: str
    kind: str = "fanout"


SHARED_EXCHANGES: dict[str, SharedExchange] = {}


def shared_exchange(name: str, publisher: str, consumer: str) -> str:
    SHARED_EXCHANGES[name] = SharedExchange(name, publisher, consumer)
    return name


CONTROL_EXCHANGE = shared_exchange("iotcloud.control", API_SERVICE, GATEWAY_SERVICE)  # "new commands in the store"
RESULTS_EXCHANGE = shared_exchange("iotcloud.results", GATEWAY_SERVICE, API_SERVICE)  # command outcomes
# Device answers the API's short path did not take (answers to the gateway's own calls, late, unasked
# or malformed ones), passed on with their routing key `server.<id>.<api>`. With the short path on,
# only the API's queue is bound to the devices' answers: each answer is routed to one queue, not also
# persisted in the gateway's durable queue (docs/benchmarks.md, issue 7 step 50).
FORWARDED_ANSWERS_EXCHANGE = shared_exchange("iotcloud.answers", API_SERVICE, GATEWAY_SERVICE)


def declare_shared_exchanges(channel) -> None:
    """Every service declares every shared exchange, so whichever starts first creates them."""
    for exchange in SHARED_EXCHANGES.values():
        channel.exchange_declare(exchange.name, exchange_type=exchange.kind, durable=True)


# -- queues ---------------------------------------------------------------------------------------

# The queue type of the platform's durable queues (the gateway's answers, the notifier's triggers) and
# of the devices' persistent MQTT sessions. Classic on one node. On a cluster a classic queue lives on
# one node and is unusable while that node is down, so a cluster runs quorum queues (Raft replicas on
# every node; they need a majority of the nodes up: three nodes to survive losing one, docs/scaling.md).
CLASSIC, QUORUM = "classic", "quorum"
QUEUE_TYPES = (CLASSIC, QUORUM)


def durable_queue_arguments(queue_type: str) -> dict:
    """`queue_declare` arguments of a durable platform queue. A queue's type cannot change in place:
    moving a broker from classic to quorum means deleting these queues once (docs/scaling.md)."""
    if queue_type not in QUEUE_TYPES:
        raise ValueError(f"queue type must be one of {QUEUE_TYPES}, not {queue_type!r}")
    return {"x-queue-type": QUORUM} if queue_type == QUORUM else {}


GATEWAY_QUEUE_PREFIX = "iotcloud.gateway."
NOTIFIER_QUEUE_PREFIX = "iotcloud.notifier."
NOTIFIER_TRIGGERS_QUEUE = NOTIFIER_QUEUE_PREFIX + "triggers"
API_QUEUE_PREFIX = "iotcloud.api."       # one exclusive queue per API process
ANSWERS_QUEUE = GATEWAY_QUEUE_PREFIX + "answers"
PRESENCE_QUEUE = GATEWAY_QUEUE_PREFIX + "presence"
WAKE_QUEUE = GATEWAY_QUEUE_PREFIX + "wake"
MQTT_QUEUE_PREFIX = "mqtt-subscription-"  # the MQTT plugin's own names: mqtt-subscription-<client id>qos<n>
MQTT_QUEUE_SUFFIXES = ("qos0", "qos1")


def device_queue_names(device_id: str) -> frozenset[str]:
    """Exactly the MQTT plugin's queue names; a prefix rule would let device `ab` own device `abc`'s queue."""
    return frozenset(f"{MQTT_QUEUE_PREFIX}{device_id}{suffix}" for suffix in MQTT_QUEUE_SUFFIXES)


# -- routing keys ---------------------------------------------------------------------------------
# Shapes are regexes without anchors: the policy matches a whole key with them, and the permission
# regexes RabbitMQ applies wrap them in ^(?:...)$.

ANSWER_WORD = "server"                  # devices answer on server.<id>.<api>
API_SHAPE = "[A-Za-z0-9_]+"             # one routing-key word: no '.', '#', '*'
REQUEST_KEY_SHAPE = rf"{DEVICE_ID_SHAPE}\.{API_SHAPE}"
ANSWER_KEYS_SHAPE = rf"{ANSWER_WORD}\..*"
ANSWERS_BINDING = f"{ANSWER_WORD}.#"
PRESENCE_KEYS = ("connection.created", "connection.closed")
TRIGGER_API = "trigger_notification"
TRIGGERS_BINDING = f"{ANSWER_WORD}.*.{TRIGGER_API}"     # every device's own trigger_notification
TRIGGER_KEY_SHAPE = rf"{DEVICE_ID_SHAPE}\.{TRIGGER_API}"  # delivery to a device: <id>.trigger_notification
TRIGGERS_SHAPE = rf"{ANSWER_WORD}\.(?:\*|{DEVICE_ID_SHAPE})\.{TRIGGER_API}"
PRESENCE_KEYS_SHAPE = r"connection\.(?:created|closed|#)"


def request_routing_key(device_id: str, api: str) -> str:
    """`<id>.<api>` on amq.topic, which the MQTT plugin delivers to the device as `<id>/<api>`."""
    return f"{device_id}.{api}"


def parse_answer_routing_key(routing_key: str) -> tuple[str, str] | None:
    """(device id, api) of `server.<id>.<api>`, or None for anything else."""
    parts = routing_key.split(".")
    if len(parts) != 3 or parts[0] != ANSWER_WORD or not is_device_id(parts[1]) or not parts[2]:
        return None
    return parts[1], parts[2]


# -- what each platform service may do ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceAccess:
    """One service's grants beyond the shared exchanges (whose publisher may write and consumer read;
    both may configure, as both declare them). `topics`: exchange -> (write, read) routing-key shapes,
    None for nothing at all."""

    queue_prefix: str
    exchanges: dict[str, frozenset[str]] = field(default_factory=dict)
    topics: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


SERVICE_ACCESS = {
    GATEWAY_SERVICE: ServiceAccess(
        GATEWAY_QUEUE_PREFIX,
        exchanges={TOPIC_EXCHANGE: frozenset({READ, WRITE}), EVENT_EXCHANGE: frozenset({READ})},
        # Requests `<id>.<api>` only: never a key in the devices' answer namespace `server.`.
        topics={TOPIC_EXCHANGE: (REQUEST_KEY_SHAPE, ANSWER_KEYS_SHAPE), EVENT_EXCHANGE: (None, PRESENCE_KEYS_SHAPE)}),
    # The REST API sends calls itself on the short path (gateways/http/direct_calls.py): it publishes
    # requests and reads the devices' answers, wakes the gateway and hears outcomes on its own queue.
    API_SERVICE: ServiceAccess(
        API_QUEUE_PREFIX, exchanges={TOPIC_EXCHANGE: frozenset({READ, WRITE})},
        topics={TOPIC_EXCHANGE: (REQUEST_KEY_SHAPE, ANSWER_KEYS_SHAPE)}),
    # The notifier hears devices' trigger_notification messages and delivers device-to-device ones:
    # it may write `<id>.trigger_notification` only, and read nothing else of the devices.
    NOTIFIER_SERVICE: ServiceAccess(
        NOTIFIER_QUEUE_PREFIX, exchanges={TOPIC_EXCHANGE: frozenset({READ, WRITE})},
        topics={TOPIC_EXCHANGE: (TRIGGER_KEY_SHAPE, TRIGGERS_SHAPE)}),
}


def exchange_permissions(service: str) -> dict[str, frozenset[str]]:
    access = SERVICE_ACCESS.get(service)
    if access is None:
        return {}
    granted = dict(access.exchanges)
    for exchange in SHARED_EXCHANGES.values():
        roles = {WRITE} if exchange.publisher == service else set()
        roles |= {READ} if exchange.consumer == service else set()
        granted[exchange.name] = frozenset({CONFIGURE} | roles)
    return granted


def service_may_use_exchange(service: str, exchange: str, permission: str) -> bool:
    return permission in exchange_permissions(service).get(exchange, ())


def service_may_use_queue(service: str, queue: str) -> bool:
    """A service owns every queue under its prefix (configure, write and read), and no other."""
    access = SERVICE_ACCESS.get(service)
    return access is not None and queue.startswith(access.queue_prefix) and len(queue) > len(access.queue_prefix)


def service_may_use_topic(service: str, exchange: str, permission: str, routing_key: str) -> bool:
    access = SERVICE_ACCESS.get(service)
    if access is None or exchange not in access.topics or permission not in (WRITE, READ):
        return False
    shape = access.topics[exchange][0 if permission == WRITE else 1]
    return shape is not None and re.fullmatch(shape, routing_key) is not None


@dataclass(frozen=True, slots=True)
class ServicePermissions:
    """RabbitMQ permission regexes of one internal service user; `topics`: exchange -> (write, read)."""

    configure: str
    write: str
    read: str
    topics: dict = field(default_factory=dict)


def rabbitmq_permissions(service: str) -> ServicePermissions:
    """The same grants as regexes the broker applies itself (PCRE, search semantics). Their `$` also
    matches before a final newline, which no service ever publishes; the policy matches whole keys."""
    access = SERVICE_ACCESS[service]
    granted = exchange_permissions(service)

    def names(permission: str) -> str:
        alternatives = [re.escape(name) for name, allowed in granted.items() if permission in allowed]
        return "^(" + "|".join([*alternatives, re.escape(access.queue_prefix) + ".+"]) + ")$"

    def keys(shape: str | None) -> str:
        return "^$" if shape is None else f"^(?:{shape})$"

    return ServicePermissions(configure=names(CONFIGURE), write=names(WRITE), read=names(READ),
                              topics={exchange: (keys(write), keys(read))
                                      for exchange, (write, read) in access.topics.items()})


SERVICE_PERMISSIONS = {service: rabbitmq_permissions(service) for service in SERVICE_ACCESS}
