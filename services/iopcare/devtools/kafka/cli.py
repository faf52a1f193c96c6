"""``python -m iopcare.devtools.kafka``: a development broker in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from iopcare.devtools.kafka.admin import create_topics, dev_sasl_users, grant_service_acls
from iopcare.devtools.kafka.broker import KafkaBroker
from iopcare.devtools.kafka.common import SUPER_USER, BrokerError
from iopcare.devtools.kafka.tls import make_test_pki

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m iopcare.devtools.kafka",
        description="Run a single-node Kafka (KRaft) broker for local development.",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("var/kafka"))
    parser.add_argument("--port", type=int, default=9092, help="client port (0 = any free)")
    parser.add_argument(
        "--controller-port", type=int, default=0, help="KRaft controller port (0 = any free)"
    )
    parser.add_argument("--topics", default="", help="comma-separated topics to create")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument(
        "--sasl-credentials",
        type=Path,
        default=None,
        help="folder of SASL passwords (created if missing): SCRAM users admin and one per "
        "service, ACLs as `make run` sets them; without it the broker is open (PLAINTEXT)",
    )
    parser.add_argument(
        "--tls",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="serve TLS with a throwaway CA made anew in FOLDER at each start (ca.pem for the "
        "clients, <user>.crt.pem/.key.pem client certificates for admin and each service): "
        "SASL_SSL with --sasl-credentials, else SSL",
    )
    parser.add_argument(
        "--mtls-port",
        type=int,
        default=None,
        help="with --tls, also an SSL listener requiring client certificates (0 = any free)",
    )
    parser.add_argument("--heap", default="512m")
    parser.add_argument("--timeout", type=float, default=90, help="start-up timeout, seconds")
    return parser


def _broker(args: argparse.Namespace) -> KafkaBroker:
    from iopcare.kit import topics

    tls = None
    if args.tls is not None:
        tls = make_test_pki(args.tls, clients=(SUPER_USER, *topics.PRODUCES)).broker_tls()
    return KafkaBroker(
        data_dir=args.data_dir,
        broker_port=args.port,
        controller_port=args.controller_port,
        heap=args.heap,
        sasl_users=dev_sasl_users(args.sasl_credentials) if args.sasl_credentials else None,
        tls=tls,
        mtls_port=args.mtls_port,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run a development broker in the foreground until SIGINT/SIGTERM."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # kafka-python narrates every connection at INFO.
    logging.getLogger("kafka").setLevel(logging.WARNING)

    try:
        broker = _broker(args)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stop_requested = threading.Event()
    starting = True

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()
        # During start-up the main thread is busy in start(); interrupt it so that the finally
        # below stops the JVM instead of leaving it orphaned in its own session.
        if starting:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        broker.start(timeout=args.timeout)
        topics = [name for name in args.topics.split(",") if name.strip()]
        create_topics(
            broker.bootstrap_servers,
            topics,
            partitions=args.partitions,
            client_options=broker.client_options(),
        )
        if broker.sasl_users:
            grant_service_acls(broker.bootstrap_servers, broker.client_options())
        starting = False
        print(broker.bootstrap_servers, flush=True)
        if broker.mtls_port:
            print(f"mTLS: {broker.mtls_bootstrap_servers}", file=sys.stderr, flush=True)
        if broker.tls is not None:
            print(f"{broker.security_protocol}, CA: {broker.tls.ca_file}", file=sys.stderr)
        print(f"Kafka log: {broker.log_file}", file=sys.stderr, flush=True)
        while not stop_requested.wait(0.5):
            if broker.pid is None:
                print(f"Kafka broker exited unexpectedly; see {broker.log_file}", file=sys.stderr)
                return 1
        return 0
    except KeyboardInterrupt:
        return 130
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        starting = False
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
