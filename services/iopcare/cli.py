"""The `iopcare` command: serve one service or the FHIR gateway, bring the whole system up, print a
token."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

SERVICES = ("careplan", "scheduling", "notes")


def _build(name: str) -> Any:
    if name == "careplan":
        from iopcare.careplan import app
    elif name == "scheduling":
        from iopcare.scheduling import app  # type: ignore[no-redef]
    elif name == "notes":
        from iopcare.notes import app  # type: ignore[no-redef]
    else:
        raise SystemExit(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
    return app.build()


def cmd_serve(args: argparse.Namespace) -> int:
    from iopcare.kit import tracing
    from iopcare.kit.runtime import configure_process
    from iopcare.kit.settings import ConfigurationError, Settings

    configure_process(Settings().log_level, service=args.service)
    tracing.configure(args.service)
    try:
        if args.service == "gateway":
            from iopcare import workers
            from iopcare.gateway.app import serve
            from iopcare.gateway.settings import GatewaySettings
            from iopcare.gateway.subscriptions.settings import SubscriptionSettings

            count = GatewaySettings().processes
            if count > 1 and SubscriptionSettings().enabled:
                # Each process would send every notification (the sender holds no lease yet).
                raise ConfigurationError(
                    "IOPCARE_GATEWAY_SUBSCRIPTIONS_ENABLED needs IOPCARE_GATEWAY_PROCESSES=1"
                )
            if count > 1 and workers.worker_index() is None:
                return workers.supervise("gateway", count, None)

            serve()
            return 0
        if args.service in SERVICES:
            from iopcare import workers
            from iopcare.kit.settings import ServiceSettings

            service = ServiceSettings.for_service(args.service)
            if service.processes > 1 and workers.worker_index() is None:
                return workers.supervise(args.service, service.processes, service.database_url)
        runtime = _build(args.service)
    except ConfigurationError as exc:
        # A missing key or certificate is the operator's to fix: say which, without a traceback.
        logging.getLogger("iopcare").critical("cannot start %s: %s", args.service, exc)
        return 2
    runtime.serve_forever()
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Checks every audit row of a service's database against its seal; 1 if any was altered."""
    import importlib

    from iopcare.kit import audit
    from iopcare.kit.db import Database
    from iopcare.kit.settings import ServiceSettings, Settings

    settings = Settings()
    store = importlib.import_module(f"iopcare.{args.service}.store")
    db = Database(ServiceSettings.for_service(args.service, settings).database_url)
    with db.read() as conn:
        altered, unsealed = audit.verify(conn, store.audit_log, audit.key_for(settings))
    print(f"{args.service}: {len(altered)} altered audit rows, {unsealed} unsealed (older) rows")
    for row_id in altered:
        print(f"  altered: audit_log.id = {row_id}")
    return 1 if altered else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Brings a service's database schema to the newest migration and exits: the deploy files'
    migration step (a Kubernetes Job, a one-shot compose service) before the service starts. The
    service migrates at start too (a no-op once this ran)."""
    import importlib

    from iopcare.kit.db import Database, migrate
    from iopcare.kit.runtime import configure_process
    from iopcare.kit.settings import ConfigurationError, ServiceSettings, Settings

    settings = Settings()
    configure_process(settings.log_level, service=args.service)
    try:
        service = ServiceSettings.for_service(args.service, settings)
    except ConfigurationError as exc:
        logging.getLogger("iopcare").critical("cannot migrate %s: %s", args.service, exc)
        return 2
    migrations = importlib.import_module(f"iopcare.{args.service}.app").MIGRATIONS
    db = Database(service.database_url)
    try:
        migrate(db, migrations)
    finally:
        db.dispose()
    logging.getLogger("iopcare").info("%s: schema at the newest migration", args.service)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from iopcare.kit.auth import mint_token
    from iopcare.kit.settings import Settings

    # A development tool: it signs with the generated key unless IOPCARE_TOKEN_PRIVATE_KEY_FILE
    # is set. Such a token is accepted only by processes in development mode (production
    # verifies with the configured IOPCARE_TOKEN_PUBLIC_KEY_FILE).
    os.environ.setdefault("IOPCARE_DEV_MODE", "true")

    settings = Settings()
    if args.system:
        # A SMART Backend Services style token for the FHIR gateway: short-lived by default.
        token = mint_token(
            settings,
            subject=args.subject or "system:dev",
            role="system",
            scopes=args.scope or ["system/*.cruds"],
            lifetime_seconds=args.lifetime or 300,
            patient_context=args.patient,
        )
    else:
        token = mint_token(
            settings,
            subject=args.subject or f"practitioner:{args.practitioner or 'dev'}",
            role=args.role,
            practitioner_id=args.practitioner,
            scopes=args.scope,
            lifetime_seconds=args.lifetime or 3600,
            patient_context=args.patient,
        )
    print(token)
    return 0


def _wait_ready(process: Any) -> None:
    try:
        process.wait_ready()
    except TimeoutError:
        raise TimeoutError(f"{process.name} did not start; log:\n{process.tail()}") from None


class _Launcher:
    """What `iopcare up` started (the broker, the services, the gateway), in the order it started
    them, and the pid files that name them; `stop` ends them all."""

    def __init__(self, settings: Any, data_dir: Path, pids: Any) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.pids = pids
        self.broker: Any = None
        self.processes: list[Any] = []

    def start_kafka(self, args: argparse.Namespace) -> tuple[str, dict[str, dict[str, str]]]:
        """The bootstrap servers, a local broker's unless IOPCARE's settings name a cluster, with
        the topics created; and each service's Kafka settings."""
        from iopcare.devtools import kafka_broker
        from iopcare.kit import topics

        settings = self.settings
        bootstrap = kafka_broker.external_bootstrap()
        # Per-service Kafka identity: each service authenticates as itself, and the broker's
        # ACLs let it write only its own topic (issue 10). Against an external cluster the
        # operator's IOPCARE_KAFKA_* settings apply to every process as they are.
        kafka_env: dict[str, dict[str, str]] = {name: {} for name in SERVICES}
        admin_options = settings.kafka_client_options()
        if bootstrap is None:
            print(
                "starting Apache Kafka (KRaft, single node, SASL/SCRAM with ACLs) on "
                f"127.0.0.1:{args.kafka_port} ...",
                flush=True,
            )
            credentials = settings.dev_key_dir / "kafka"
            users = kafka_broker.dev_sasl_users(credentials)
            self.broker = broker = kafka_broker.KafkaBroker(
                data_dir=self.data_dir / "kafka",
                broker_port=args.kafka_port,
                controller_port=args.kafka_controller_port,
                sasl_users=users,
            )
            broker.start()
            if broker.pid is not None:
                self.pids.record("kafka", broker.pid)
            bootstrap = broker.bootstrap_servers
            admin_options = broker.client_options()
            for name in SERVICES:
                kafka_env[name] = {
                    "IOPCARE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                    "IOPCARE_KAFKA_SASL_MECHANISM": kafka_broker.SCRAM_MECHANISM,
                    "IOPCARE_KAFKA_SASL_USERNAME": name,
                    "IOPCARE_KAFKA_SASL_PASSWORD_FILE": str(credentials / f"{name}.password"),
                }
        kafka_broker.create_topics(
            bootstrap,
            topics.all_topics(settings.topic_prefix),
            partitions=settings.topic_partitions,
            client_options=admin_options,
            settings=settings,
        )
        if self.broker is not None:
            kafka_broker.grant_service_acls(bootstrap, admin_options, prefix=settings.topic_prefix)
        return bootstrap, kafka_env

    def start_services(
        self, env: dict[str, str], kafka_env: dict[str, dict[str, str]]
    ) -> dict[str, str]:
        """Starts the services one after the other; returns their gRPC addresses."""
        from iopcare.devtools.processes import ServiceProcess
        from iopcare.kit.settings import ServiceSettings

        for name in SERVICES:
            process = ServiceProcess(
                name,
                ServiceSettings.for_service(name, self.settings).port,
                {**env, **kafka_env[name]},
                self.data_dir / "logs" / f"{name}.log",
            )
            print(f"starting {name} on {process.address} ...", flush=True)
            self._start(process)
        return {p.name: p.address for p in self.processes}

    def start_gateway(self, env: dict[str, str], addresses: dict[str, str]) -> Any:
        from iopcare.devtools.processes import GatewayProcess
        from iopcare.gateway.settings import GatewaySettings

        gateway = GatewayProcess(
            "gateway",
            GatewaySettings().port,
            {
                **env,
                **{f"IOPCARE_GATEWAY_{n.upper()}_ADDRESS": a for n, a in addresses.items()},
            },
            self.data_dir / "logs" / "gateway.log",
        )
        print(f"starting the FHIR gateway on {gateway.base_url} ...", flush=True)
        self._start(gateway)
        return gateway

    def _start(self, process: Any) -> None:
        self.processes.append(process)
        process.start(wait=False)
        if process.pid is not None:
            self.pids.record(process.name, process.pid)
        _wait_ready(process)

    def watch(self, stop: threading.Event) -> int:
        """Until `stop` is set: 0; or 1 as soon as a process has exited on its own."""
        while not stop.is_set():
            for p in self.processes:
                if not p.running():
                    print(f"{p.name} exited unexpectedly; log:\n{p.tail()}", file=sys.stderr)
                    return 1
            stop.wait(1.0)
        return 0

    def stop(self) -> None:
        from iopcare.devtools.lifetime import LAUNCHER
        from iopcare.devtools.processes import stop_all

        # A second Ctrl-C must not interrupt the stopping and leave children running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # All at once (SIGTERM, SIGKILL after a few seconds), then the broker they used.
        print("\nstopping ...", flush=True)
        stop_all(self.processes)
        if self.broker is not None:
            self.broker.stop(timeout=10)
        for name in (*(p.name for p in self.processes), "kafka", LAUNCHER):
            self.pids.forget(name)


def _print_try(gateway_url: str) -> None:
    print("\nall services up (logs in var/logs). Try:")
    print("  .venv/bin/iopcare token --role therapist --practitioner demo-therapist")
    print(
        f'  curl -H "Authorization: Bearer $(.venv/bin/iopcare token --system)" '
        f"{gateway_url}/metadata"
    )
    print("Press Ctrl-C to stop.", flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    from iopcare.devtools.lifetime import LAUNCHER, AlreadyRunning, PidFiles
    from iopcare.kit import files
    from iopcare.kit.auth import mint_token
    from iopcare.kit.settings import Settings

    # `iopcare up` is the developer's whole system on one machine (a local broker, SQLite, a
    # demo): development mode, so generated keys are allowed; its children inherit it.
    os.environ.setdefault("IOPCARE_DEV_MODE", "true")
    settings = Settings()
    data_dir = Path(settings.data_dir)
    files.private_dir(data_dir)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C stops the system even when started in the background of a script (which starts its
    # children with SIGINT ignored, so Python would not turn it into KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Children end with this launcher (a parent-death signal, devtools.lifetime); the pid files
    # catch what that cannot: processes of an earlier launcher that are somehow still running.
    pids = PidFiles(data_dir / "run")
    try:
        leftovers = pids.end_leftovers()
    except AlreadyRunning as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    if leftovers:
        print(f"ended leftovers of an earlier run: {', '.join(leftovers)}", flush=True)
    pids.record(LAUNCHER, os.getpid())
    launcher = _Launcher(settings, data_dir, pids)
    try:
        bootstrap, kafka_env = launcher.start_kafka(args)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "IOPCARE_DATA_DIR": str(data_dir),
            # Event values encrypted with the producers' topic keys (kit.payloads).
            "IOPCARE_EVENT_ENCRYPTION": os.environ.get("IOPCARE_EVENT_ENCRYPTION", "true"),
        }
        addresses = launcher.start_services(env, kafka_env)
        gateway = launcher.start_gateway(env, addresses)
        token = mint_token(
            settings,
            subject="practitioner:demo-psychiatrist",
            role="psychiatrist",
            practitioner_id="demo-psychiatrist",
        )
        if args.demo:
            from iopcare.demo_load import run_demo

            run_demo(addresses, gateway.base_url, settings, token)
        _print_try(gateway.base_url)
        return launcher.watch(stop)
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        launcher.stop()
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    """Lists a service's parked outbox rows, or releases them for the relay to try again."""
    from iopcare.kit import relay
    from iopcare.kit.db import Database
    from iopcare.kit.settings import ServiceSettings, Settings

    settings = Settings()
    service = ServiceSettings.for_service(args.service, settings)
    outbox = _outbox_table(args.service)
    db = Database(service.database_url)
    try:
        if args.action == "parked":
            rows = relay.parked_rows(db, outbox)
            for row in rows:
                print(
                    f"{row.id}\t{row.parked_at:%Y-%m-%dT%H:%M:%SZ}\t{row.event_type}\t"
                    f"{row.subject}\t{len(row.payload.encode())} bytes\t{row.park_reason}"
                )
            print(f"{len(rows)} parked row(s)", file=sys.stderr)
            return 0
        released = relay.release_parked(db, outbox, args.ids or None)
        print(f"{released} row(s) released; the running relay publishes them next")
        return 0
    finally:
        db.dispose()


def _outbox_table(service: str) -> Any:
    if service == "careplan":
        from iopcare.careplan import store
    elif service == "scheduling":
        from iopcare.scheduling import store  # type: ignore[no-redef]
    else:
        from iopcare.notes import store  # type: ignore[no-redef]
    return store.outbox


def cmd_client_register(args: argparse.Namespace) -> int:
    from iopcare.gateway.authserver import ClientStore, check_jwks_url, load_jwks_file
    from iopcare.kit.settings import Settings

    settings = Settings()
    try:
        if args.jwks_url:
            check_jwks_url(args.jwks_url)
            jwks = None
        else:
            jwks = load_jwks_file(args.jwks_file)
        registered = ClientStore(settings.auth_server_db_path).register(
            args.scope, jwks_url=args.jwks_url, jwks=jwks, client_id=args.client_id
        )
    except (OSError, ValueError) as exc:
        print(f"not registered: {exc}", file=sys.stderr)
        return 2
    print(registered.client_id)
    return 0


def _add_database_commands(sub: Any) -> None:
    """The commands that work on one service's database alone (no Kafka, no keys)."""
    verify = sub.add_parser(
        "audit-verify", help="check a service's audit rows against their seals (exit 1: altered)"
    )
    verify.add_argument("service", choices=SERVICES)
    verify.set_defaults(func=cmd_audit_verify)
    migrate = sub.add_parser(
        "migrate", help="migrate a service's database to the newest schema, then exit"
    )
    migrate.add_argument("service", choices=SERVICES)
    migrate.set_defaults(func=cmd_migrate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="iopcare", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="run one service (gRPC server, relay, consumers) or the FHIR gateway"
    )
    serve.add_argument("service", choices=(*SERVICES, "gateway"))
    serve.set_defaults(func=cmd_serve)
    up = sub.add_parser("up", help="start Kafka and every service; Ctrl-C stops them all")
    up.add_argument("--demo", action="store_true", help="load the demo patient and print it")
    up.add_argument("--kafka-port", type=int, default=9092, help="the local broker's client port")
    up.add_argument(
        "--kafka-controller-port", type=int, default=9093, help="the local broker's KRaft port"
    )
    up.set_defaults(func=cmd_up)
    _add_database_commands(sub)
    outbox = sub.add_parser(
        "outbox",
        help="parked outbox rows (too large or invalid for Kafka): list them, or retry them",
    )
    outbox.add_argument("action", choices=("parked", "retry"))
    outbox.add_argument("service", choices=SERVICES)
    outbox.add_argument(
        "ids", nargs="*", type=int, help="outbox row ids to retry (default: every parked row)"
    )
    outbox.set_defaults(func=cmd_outbox)
    token = sub.add_parser(
        "token",
        help="print a development bearer token (development only: signed with the local key; "
        "EHRs get tokens from POST /auth/token or their own identity provider)",
    )
    token.add_argument("--role", default="therapist")
    token.add_argument("--practitioner", default=None, help="Practitioner id the token acts as")
    token.add_argument(
        "--system",
        action="store_true",
        help="an outside EHR's backend token (role system: worth exactly its scopes); internal "
        "identities use --role service",
    )
    token.add_argument("--scope", action="append", help="a SMART scope (repeatable)")
    token.add_argument("--subject", default=None)
    token.add_argument(
        "--patient", default=None, help="launch context: the patient patient/ scopes apply to"
    )
    token.add_argument(
        "--lifetime",
        type=int,
        default=None,
        help="seconds until it expires (default 300 with --system, else 3600)",
    )
    token.set_defaults(func=cmd_token)
    client = sub.add_parser(
        "client", help="SMART Backend Services clients of the embedded authorization server"
    )
    client_sub = client.add_subparsers(dest="client_command", required=True)
    register = client_sub.add_parser(
        "register",
        help="register a client with its public keys (JWKS) and the system scopes it may get",
    )
    keys = register.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks-url", help="URL of the client's JWKS (fetched, cached by kid)")
    keys.add_argument("--jwks-file", type=Path, help="a file holding the client's JWKS")
    register.add_argument(
        "--scope", action="append", required=True, help="a system scope it may get (repeatable)"
    )
    register.add_argument("--client-id", default=None, help="default: a new UUID")
    register.set_defaults(func=cmd_client_register)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    # Everything an iopcare process writes (databases and their -wal/-shm, keys, logs, the local
    # broker's segments, which hold events with patient data) is for its owner only, whatever
    # umask the shell that started it had; children (services of `iopcare up`) inherit it.
    os.umask(0o077)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
