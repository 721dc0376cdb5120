"""One libpyiotcloud device over MQTT(S): ``python -m simulators.mqtt_device --credentials device.json``."""

from __future__ import annotations

import argparse
import logging
import sys

from ._cli import add_credentials_arguments, credentials_from_args, install_stop_handlers, setup_logging
from .mqtt_engine import KEEPALIVE, Backoff, MqttDevice, MqttLoop

log = logging.getLogger("simulators.mqtt_device")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.mqtt_device",
        description="Simulate one libpyiotcloud device over MQTT 3.1.1 (TLS client cert, client id = device id): "
                    "answers <id>/<api> requests on server/<id>/<api>.",
    )
    add_credentials_arguments(parser, "mqtt")
    parser.add_argument("--keepalive", type=int, default=KEEPALIVE, help="MQTT keepalive in seconds (default %(default)s)")
    parser.add_argument("--max-reconnect-delay", type=float, default=30.0, metavar="SECONDS",
                        help="cap of the exponential reconnect backoff (default %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    creds = credentials_from_args(parser, args, "mqtt")
    loop = MqttLoop()
    try:
        dev = MqttDevice(creds, loop, keepalive=args.keepalive, notification_recipient=args.notification_recipient,
                         backoff=Backoff(maximum=args.max_reconnect_delay))
    except Exception as exc:  # bad PEMs and the like
        parser.error(str(exc))
    install_stop_handlers(loop.stop)
    log.info("device %s -> %s://%s:%d", creds.device_id, "mqtts" if creds.tls else "mqtt", creds.host, creds.port("mqtt"))
    loop.add(dev)
    stats = loop.run()
    log.info("stopped: %d requests, %d publishes", stats.requests, stats.publishes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
