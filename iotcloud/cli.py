"""The `iotcloud` command: run the platform or one of its processes, read the outbox, rebuild projections."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from iotcloud import audit_cli, logs
from iotcloud.config import Settings
from iotcloud.gc_freeze import freeze_startup_objects
from iotcloud.ops_server import ops_listener


def cmd_run(settings: Settings, args) -> int:
    from iotcloud.supervisor import run
    return run(settings)


def cmd_api(settings: Settings, args) -> int:
    """The REST API alone (gunicorn, as `iotcloud run` starts it): for containers and Kubernetes pods.
    Run `iotcloud init` (or the compose init service) first: it creates the keys and tables."""
    import os
    from iotcloud.api_launch import api_environment, gunicorn_command
    command = gunicorn_command(settings)
    os.execve(command[0], command, api_environment(settings, dict(os.environ)))


def cmd_projector(settings: Settings, args) -> int:
    from iotcloud.bootstrap import build_projectors
    from iotcloud.leases import lease_for, work_under
    from iotcloud.metrics import ProjectionCollector, register
    from projections.runner import retire_read_models, run_projectors
    stop = stop_on_signals()
    lease = lease_for(settings, "projector")
    projectors, mongo = build_projectors(settings)
    db = mongo[settings.mongodb_database]
    register(ProjectionCollector(projectors, db))
    ops = ops_listener(settings, "projector", lambda: (lease is None or lease.held) and db.command("ping"))
    if work_under(lease, stop):
        retire_read_models(db)
        freeze_startup_objects()
        run_projectors(projectors, stop, min_interval=settings.projection_interval,
                       longest_hold=settings.projection_hold)
    return finish(lease, ops, mongo)


def cmd_gateway(settings: Settings, args) -> int:
    from gateways.devices.runtime import DeviceGateway
    from iotcloud.bootstrap import build_device_control, build_event_applications, connect_read_store
    from iotcloud.leases import lease_for, work_under
    from iotcloud.metrics import GatewayCollector, register
    from gateways.broker.topology import GATEWAY_SERVICE
    from iotcloud.broker import admin_client, service_address
    address = service_address(settings, GATEWAY_SERVICE)
    if address is None:
        print(f"no broker credentials for {GATEWAY_SERVICE} under {settings.service_credentials_dir}", file=sys.stderr)
        return 2
    stop = stop_on_signals()
    lease = lease_for(settings, "gateway")
    working: list = []
    ops = ops_listener(settings, "gateway", lambda: bool(working) and working[0].connected)
    if not work_under(lease, stop):  # a standby gateway holds no broker link and reads nothing
        return finish(lease, ops)
    # Built only once the lease is held: a gateway recovers its in-flight calls from the log as it starts.
    _, fleet = build_event_applications(settings)
    mongo, db = connect_read_store(settings)
    gateway = DeviceGateway(build_device_control(settings, sole_writer=True), fleet, db, address,
                            revoke=admin_client(settings), answers_via_api=settings.direct_calls_enabled)
    register(GatewayCollector(gateway))
    working.append(gateway)
    freeze_startup_objects()
    gateway.run(stop)
    return finish(lease, ops, mongo)


def stop_on_signals() -> threading.Event:
    """SIGTERM and SIGINT set the returned event; each process then finishes what it is doing and exits."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def finish(lease, ops, *closing) -> int:
    """Closes a process's listener, connections and lease; 1 if it stopped because the lease was lost
    (its supervisor or orchestrator restarts it, and it waits for the lease again)."""
    lost = lease is not None and lease.lost.is_set()  # before release(), which sets it too
    ops.stop()
    for resource in closing:
        resource.close()
    if lease is not None:
        lease.release()
    return 1 if lost else 0


def cmd_notifier(settings: Settings, args) -> int:
    from iotcloud.bootstrap import build_notifier_process
    from iotcloud.leases import lease_for, work_under
    stop = stop_on_signals()
    lease = lease_for(settings, "notifier")
    ops = ops_listener(settings, "notifier", lambda: lease is None or lease.held)
    if not work_under(lease, stop):  # a standby: two notifiers would both deliver what is due
        return finish(lease, ops)
    notifier = build_notifier_process(settings)
    freeze_startup_objects()
    try:
        notifier.run(stop)
    finally:
        notifier.close()
    return finish(lease, ops)


def cmd_broker_auth(settings: Settings, args) -> int:
    from gateways.broker.auth_backend import AuthBackendIdentity, create_auth_app
    from gateways.broker.auth_server import AuthBackendServer
    from gateways.broker.node import load_or_create_admin_credentials
    from iotcloud.bootstrap import build_event_applications
    from gateways.broker.directory import FleetDirectory
    from gateways.broker.topology import SERVICE_ACCESS
    _, fleet = build_event_applications(settings)
    registry = FleetDirectory(fleet)
    identity = AuthBackendIdentity.load_or_create(settings.broker_dir)
    app = create_auth_app(registry, tuple(SERVICE_ACCESS), secret=identity.secret,
                          admin=load_or_create_admin_credentials(settings.broker_dir))
    server = AuthBackendServer(app, identity, port=settings.broker_auth_port).start()
    ops = ops_listener(settings, "broker_auth")
    stop = stop_on_signals()
    freeze_startup_objects()  # it answers the broker's questions on a device's first call
    stop.wait()
    ops.stop()
    server.stop()
    fleet.close()
    return 0


def cmd_signer(settings: Settings, args) -> int:
    from iotcloud.bootstrap import build_signer
    server = build_signer(settings).start()
    ops = ops_listener(settings, "signer")
    stop = stop_on_signals()
    stop.wait()
    ops.stop()
    server.stop()
    return 0


def cmd_rebuild(settings: Settings, args) -> int:
    from iotcloud.bootstrap import build_projectors
    from projections.runner import progress_bar, rebuild
    projectors, mongo = build_projectors(settings)
    chosen = [p for p in projectors if not args.name or p.projection.name in args.name]
    if not chosen:
        print(f"no projection named {', '.join(args.name)}; known: "
              f"{', '.join(p.projection.name for p in projectors)}", file=sys.stderr)
        return 2
    for projector in chosen:
        generation = rebuild(projector, progress_bar())
        print(f"{projector.projection.name}: generation {generation} is live")
    mongo.close()
    return 0


def cmd_status(settings: Settings, args) -> int:
    from iotcloud.bootstrap import build_projectors
    from projections.lag import format_report, lag_report
    from queries.read_models import ReadModelCatalogue
    projectors, mongo = build_projectors(settings)
    sources = {name: app for projector in projectors for name, app in projector.sources.items()}
    rows = lag_report(ReadModelCatalogue(mongo[settings.mongodb_database]), sources)
    print("\n".join(json.dumps(row) for row in rows) if args.json else "\n".join(format_report(rows)))
    mongo.close()
    return 0


def cmd_users_role(settings: Settings, args) -> int:
    """Grants or revokes a role. It holds from the next request on: the API checks roles against the
    event store, where this is committed before the command answers; the users read model follows."""
    import getpass
    from commands.context import acting_as
    from commands.errors import DomainError
    from iotcloud.bootstrap import build_event_applications, connect_read_store
    from queries.read_models import USERS, ReadModelCatalogue
    accounts, fleet = build_event_applications(settings)
    fleet.close()
    try:
        with acting_as(f"cli:{getpass.getuser()}"):
            change = accounts.grant_role if args.action == "grant" else accounts.revoke_role
            position = change(args.user, args.role)
    except DomainError as error:
        print(error.detail, file=sys.stderr)
        return 2
    finally:
        accounts.close()
    if position is None:
        print(f"{args.user}: nothing to do ({args.role} already {'held' if args.action == 'grant' else 'absent'})")
        return 0
    mongo, db = connect_read_store(settings)
    try:
        shown = ReadModelCatalogue(db).wait_for(USERS, "Accounts", position, settings.projection_wait)
    except Exception:  # noqa: BLE001 - the change holds already; the read model is for display
        shown = False
    mongo.close()
    print(f"{args.user}: {args.role} {'granted' if args.action == 'grant' else 'revoked'} (enforced now;"
          f" users read model {'current' if shown else 'will follow when the projector runs'})")
    return 0


def cmd_outbox(settings: Settings, args) -> int:
    from gateways.outbox import Outbox
    messages = Outbox(settings.state_dir / "outbox.sqlite3").messages(limit=args.limit, recipient=args.to)
    if args.json:
        for message in messages:
            print(json.dumps(message))
        return 0
    if not messages:
        print("The outbox is empty.")
    for m in messages:
        print(f"--- #{m['id']}  {m['created_at']}  {m['channel']} to {m['to']}")
        if m["subject"]:
            print(f"Subject: {m['subject']}")
        print(m["body"])
        print()
    return 0


def cmd_init(settings: Settings, args) -> int:
    from iotcloud.bootstrap import prepare_state
    prepare_state(settings)
    print(f"state ready in {settings.state_dir} (CA: {settings.pki_dir / 'ca.pem'})")
    return 0


def cmd_broker_config(settings: Settings, args) -> int:
    from iotcloud.bootstrap import prepare_state
    from iotcloud.broker_bundle import broker_node_files, describe
    prepare_state(settings)
    names = tuple(dict.fromkeys([settings.broker_tls_name, *args.hostname, "localhost"]))
    for path in describe(broker_node_files(settings, names)):
        print(f"wrote {path}")
    return 0


def cmd_probe(settings: Settings, args) -> int:
    """A container healthcheck without curl in the image: 0 when the URL answers 2xx within 5 s."""
    import ssl
    import urllib.request
    context = ssl.create_default_context(cafile=args.cacert) if args.url.startswith("https:") else None
    try:
        with urllib.request.urlopen(args.url, timeout=5, context=context) as answer:
            return 0 if 200 <= answer.status < 300 else 1
    except OSError as exc:
        print(f"{args.url}: {exc}", file=sys.stderr)
        return 1


def cmd_keys_rotate(settings: Settings, args) -> int:
    from iotcloud.bootstrap import token_issuer
    issuer = token_issuer(settings)
    kid = issuer.rotate()
    print(f"new token-signing key {kid}; the previous one verifies for another {settings.access_token_ttl} s")
    return 0


def parser() -> argparse.ArgumentParser:
    from commands.domain.accounts import ROLES
    root = argparse.ArgumentParser(prog="iotcloud", description="iotcloud: secure remote control of devices.")
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start the whole platform on embedded defaults (foreground)").set_defaults(func=cmd_run)
    sub.add_parser("api", help="run the REST API alone (gunicorn; foreground)").set_defaults(func=cmd_api)
    sub.add_parser("projector", help="run the read-model projectors (foreground)").set_defaults(func=cmd_projector)
    sub.add_parser("init", help="create the platform CA and signing keys").set_defaults(func=cmd_init)
    sub.add_parser("gateway", help="run the device gateway (foreground)").set_defaults(func=cmd_gateway)
    sub.add_parser("signer", help="run the certificate signer, the only holder of the CA key (foreground)"
                   ).set_defaults(func=cmd_signer)
    sub.add_parser("notifier", help="run the notifier: delivers email, SMS and device notifications (foreground)"
                   ).set_defaults(func=cmd_notifier)
    sub.add_parser("broker-auth", help="run the broker's HTTP auth backend (foreground)").set_defaults(func=cmd_broker_auth)
    broker_config = sub.add_parser("broker-config", help="write the CA, keys and a RabbitMQ configuration for a broker "
                                   "started elsewhere (docker-compose's init service)")
    broker_config.add_argument("--hostname", action="append", default=[],
                               help="a name devices use for the broker (its certificate's names)")
    broker_config.set_defaults(func=cmd_broker_config)
    probe = sub.add_parser("probe", help="exit 0 if a URL answers 2xx (container healthchecks)")
    probe.add_argument("url")
    probe.add_argument("--cacert", help="CA certificate to verify an https URL with")
    probe.set_defaults(func=cmd_probe)
    projections = sub.add_parser("projections", help="read-model maintenance").add_subparsers(dest="action", required=True)
    rebuild = projections.add_parser("rebuild", help="replay the whole event store into fresh read models")
    rebuild.add_argument("name", nargs="*", help="projection names (default: all)")
    rebuild.set_defaults(func=cmd_rebuild)
    status = projections.add_parser("status", help="positions and lag of each read model")
    status.add_argument("--json", action="store_true", help="one JSON object per projection and source")
    status.set_defaults(func=cmd_status)
    keys = sub.add_parser("keys", help="token-signing keys").add_subparsers(dest="action", required=True)
    keys.add_parser("rotate", help="sign new tokens with a fresh key (API processes follow within a minute)"
                    ).set_defaults(func=cmd_keys_rotate)
    users = sub.add_parser("users", help="roles of user accounts").add_subparsers(dest="action", required=True)
    for action in ("grant", "revoke"):
        change = users.add_parser(action, help=f"{action} a role (auditor, analyst, admin); holds from the next request")
        change.add_argument("user")
        change.add_argument("role", choices=ROLES)
        change.set_defaults(func=cmd_users_role)
    audit_cli.add_commands(sub)
    outbox = sub.add_parser("outbox", help="list emails and SMS the platform sent (newest first)")
    outbox.add_argument("--json", action="store_true", help="one JSON object per line")
    outbox.add_argument("--limit", type=int, default=20)
    outbox.add_argument("--to", help="only messages to this recipient")
    outbox.set_defaults(func=cmd_outbox)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    return args.func(settings, args)


if __name__ == "__main__":
    sys.exit(main())
