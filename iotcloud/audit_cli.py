"""`iotcloud audit ...`: a device's events, the device as it was, and the event chain's integrity."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time

from iotcloud.config import Settings


def add_commands(sub) -> None:
    audit = sub.add_parser("audit", help="replay, time travel and tamper evidence from the event store"
                           ).add_subparsers(dest="action", required=True)
    events = audit.add_parser("events", help="a device's events and its calls' events, in order (JSON lines)")
    events.add_argument("device_id")
    events.set_defaults(func=cmd_events)
    state = audit.add_parser("state", help="the device as it was at a moment or a revision (JSON)")
    state.add_argument("device_id")
    when = state.add_mutually_exclusive_group(required=True)
    when.add_argument("--at", type=parse_time, help="ISO 8601 time (UTC when no offset is given)")
    when.add_argument("--revision", type=int)
    state.add_argument("--no-snapshots", action="store_true",
                       help="fold every event from the first (snapshots are outside the chain)")
    state.set_defaults(func=cmd_state)
    verify = audit.add_parser("verify", help="walk each log's hash chain; exit 1 naming the first bad event")
    verify.add_argument("--log", action="append", help="only this application log (default: all)")
    verify.set_defaults(func=cmd_verify)
    audit.add_parser("checkpoint", help="verify, then sign each log's head with the platform CA key"
                     ).set_defaults(func=cmd_checkpoint)


def parse_time(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def cmd_events(settings: Settings, args) -> int:
    from commands.audit.timeline import device_events
    from iotcloud.bootstrap import build_audit_applications
    apps = build_audit_applications(settings)
    try:
        for line in device_events(apps["DeviceFleet"], apps["DeviceControl"], args.device_id):
            print(json.dumps(line))
    finally:
        close(apps)
    return 0


def cmd_state(settings: Settings, args) -> int:
    from commands.audit.time_travel import device_at_revision, device_record, revision_at
    from commands.errors import DeviceNotFound
    from iotcloud.bootstrap import build_audit_applications
    apps = build_audit_applications(settings)
    fleet = apps["DeviceFleet"]
    try:
        revision = args.revision if args.at is None else revision_at(fleet, args.device_id, args.at)
        print(json.dumps(device_record(device_at_revision(fleet, args.device_id, revision,
                                                          use_snapshots=not args.no_snapshots)), indent=2))
    except DeviceNotFound as error:
        print(str(error), file=sys.stderr)
        return 1
    finally:
        close(apps)
    return 0


def cmd_verify(settings: Settings, args) -> int:
    from iotcloud.bootstrap import audit_checkpoints, build_audit_applications, platform_public_key
    from commands.audit.integrity import verify_logs
    apps = build_audit_applications(settings)
    unknown = set(args.log or ()) - set(apps)
    if unknown:
        print(f"no log named {', '.join(sorted(unknown))}; known: {', '.join(apps)}", file=sys.stderr)
        close(apps)
        return 2
    chosen = [app for name, app in apps.items() if not args.log or name in args.log]
    try:
        reports = verify_logs(chosen, audit_checkpoints(settings), platform_public_key(settings), Progress())
    finally:
        close(apps)
    for report in reports:
        checkpoint = "" if report.checkpoint is None else f", signed checkpoint at #{report.checkpoint.notification_id} holds"
        if report.broken is None:
            print(f"{report.log}: intact, {report.events} events, head #{report.head_id} {report.head[:16]}{checkpoint}")
        else:
            print(f"{report.log}: BROKEN: {report.broken.describe()}")
    return 0 if all(report.broken is None for report in reports) else 1


def cmd_checkpoint(settings: Settings, args) -> int:
    from iotcloud.bootstrap import audit_checkpoints, build_audit_applications, platform_public_key
    from commands.audit.integrity import verify_logs
    from commands.chain.verify import verify
    from commands.pki import CertificateAuthority
    apps = build_audit_applications(settings)
    try:
        reports = verify_logs(apps.values(), audit_checkpoints(settings), platform_public_key(settings), Progress())
        broken = [r for r in reports if r.broken is not None]
        for report in broken:
            print(f"{report.log}: BROKEN: {report.broken.describe()}; no checkpoint signed", file=sys.stderr)
        if broken:
            return 1
        ca = CertificateAuthority.load_or_create(settings.pki_dir)
        for app in apps.values():
            # Re-walk to the head as it is now (events may have been added during the first walk).
            verdict = verify(app.recorder)
            if verdict.broken is not None:
                print(f"{app.name}: BROKEN: {verdict.broken.describe()}; no checkpoint signed", file=sys.stderr)
                return 1
            checkpoint = audit_checkpoints(settings).sign(app.name, verdict, ca.sign_statement)
            print(f"{app.name}: checkpoint signed at #{checkpoint.notification_id} {checkpoint.hash[:16]}")
    finally:
        close(apps)
    return 0


class Progress:
    """A line on stderr at most once a second while a long log is walked."""

    def __init__(self):
        self.log = None
        self.started = self.shown = time.monotonic()

    def __call__(self, log: str, done: int, total: int) -> None:
        now = time.monotonic()
        if log != self.log:
            self.log, self.started, self.shown = log, now, now
        if now - self.shown >= 1.0 or (done == total and now - self.started >= 1.0):
            self.shown = now
            rate = done / max(now - self.started, 1e-9)
            print(f"{log}: {done:,}/{total:,} events checked ({rate:,.0f}/s)", file=sys.stderr, flush=True)


def close(apps: dict) -> None:
    for app in apps.values():
        app.close()
