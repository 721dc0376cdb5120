"""Many MQTT devices from one process, for load tests.

``python -m simulators.fleet --credentials-dir DIR`` (and/or ``--credentials F1 F2 ...``)
connects every device with its own credentials (own client certificate, client id =
device id) and answers requests exactly like ``simulators.mqtt_device``.  All
connections share one thread and one selector loop (see :mod:`simulators.mqtt_engine`),
so a thousand devices cost about one paho client object each, not a thread each.

Progress lines go to stdout::

    fleet: 1000/1000 connected (1000 subscribed) t=2.1s attempts=1000 failures=0 requests=0 replies=0 rss=61.2MiB
    fleet: all 1000 devices connected and subscribed in 2.08 s (481.0 devices/s), rss=61.2MiB
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time

from ._cli import add_common_arguments, install_stop_handlers, setup_logging
from .credentials import CredentialsError, load_many
from .mqtt_engine import KEEPALIVE, Backoff, MqttDevice, MqttLoop

log = logging.getLogger("simulators.fleet")


def rss_mib() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < needed:
            log.warning("open-file limit %d is below the %d needed for this fleet", new, needed)


class Progress:
    def __init__(self, loop: MqttLoop, interval: float, out=sys.stdout) -> None:
        self.loop, self.interval, self.out = loop, interval, out
        self.start = time.monotonic()
        self._last_print = self.start
        self._last_line = ""
        self.all_connected_after: float | None = None

    def line(self) -> str:
        s = self.loop.stats
        return (f"fleet: {s.connected}/{s.devices} connected ({s.subscribed} subscribed) "
                f"t={time.monotonic() - self.start:.1f}s attempts={s.attempts} failures={s.failures} "
                f"requests={s.requests} replies={s.publishes} rss={rss_mib():.1f}MiB")

    def emit(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def tick(self, now: float) -> None:
        s = self.loop.stats
        if self.all_connected_after is None and s.all_subscribed_at is not None:
            self.all_connected_after = s.all_subscribed_at - self.start
            rate = s.devices / self.all_connected_after if self.all_connected_after > 0 else float("inf")
            self.emit(f"fleet: all {s.devices} devices connected and subscribed in {self.all_connected_after:.2f} s "
                      f"({rate:.1f} devices/s), rss={rss_mib():.1f}MiB")
        if now - self._last_print >= self.interval:
            line = self.line()
            core = line.split(" t=")[0] + line.split(" requests=")[1].split(" rss=")[0]
            if core != self._last_line:
                self.emit(line)
                self._last_line = core
            self._last_print = now


def endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.fleet",
        description="Run many libpyiotcloud MQTT devices (one credentials file each) in one process on one "
                    "selector loop, for load tests; prints connected counts.",
    )
    parser.add_argument("--credentials-dir", "-d", action="append", default=[], metavar="DIR",
                        help="directory of credentials *.json files (repeatable)")
    parser.add_argument("--credentials", "-c", nargs="+", default=[], metavar="FILE", help="credentials files")
    parser.add_argument("--limit", type=int, help="use at most N devices")
    parser.add_argument("--connect-rate", type=float, metavar="PER_S",
                        help="at most this many connect attempts per second (default: as fast as possible)")
    parser.add_argument("--max-connecting", type=int, metavar="N",
                        help="at most N devices between connect and subscribed at once (default: no cap)")
    parser.add_argument("--keepalive", type=int, default=KEEPALIVE, help="MQTT keepalive in seconds (default %(default)s)")
    parser.add_argument("--progress-interval", type=float, default=5.0, metavar="S",
                        help="seconds between progress lines (default %(default)s)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log every device's connects and subscribes")
    parser.add_argument("--broker", action="append", default=[], metavar="HOST:PORT", type=endpoint,
                        help="an MQTTS address of the broker's cluster (repeatable): device n starts at address "
                             "n mod count and moves to the next whenever its node refuses or drops it "
                             "(default: the address in each credentials file)")
    parser.add_argument("--max-reconnect-delay", type=float, default=30.0, metavar="SECONDS",
                        help="cap of each device's exponential reconnect backoff (default %(default)s)")
    add_common_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if not args.verbose:
        logging.getLogger("simulators.mqtt").setLevel(max(logging.WARNING, logging.getLogger().level))
    if not args.credentials_dir and not args.credentials:
        parser.error("give --credentials-dir DIR and/or --credentials FILE ...")
    try:
        all_creds = load_many(args.credentials, args.credentials_dir)
    except CredentialsError as exc:
        parser.error(str(exc))
    if args.limit is not None:
        all_creds = all_creds[: args.limit]
    if not all_creds:
        parser.error("no credentials files found")
    raise_fd_limit(len(all_creds) + 64)

    loop = MqttLoop(connect_rate=args.connect_rate, max_connecting=args.max_connecting)
    progress = Progress(loop, args.progress_interval)
    loop.tick = progress.tick  # set after construction: Progress needs the loop
    t0 = time.monotonic()
    for n, creds in enumerate(all_creds):
        try:
            loop.add(MqttDevice(creds, loop, keepalive=args.keepalive,
                                notification_recipient=args.notification_recipient,
                                backoff=Backoff(maximum=args.max_reconnect_delay), endpoints=args.broker or None,
                                first_endpoint=n))
        except Exception as exc:
            parser.error(f"{creds.source}: {exc}")
    progress.emit(f"fleet: starting {len(all_creds)} devices (set-up {time.monotonic() - t0:.2f} s, rss={rss_mib():.1f}MiB)")
    progress.start = time.monotonic()
    install_stop_handlers(loop.stop)
    loop.run()
    s = loop.stats
    progress.emit(f"fleet: stopped; peak {s.peak_subscribed}/{s.devices} subscribed, attempts={s.attempts} "
                  f"failures={s.failures} requests={s.requests} replies={s.publishes} rss={rss_mib():.1f}MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
