"""What every part of the development broker shares: its error, its address and its users."""

from __future__ import annotations

import contextlib
import os
import socket

__all__ = [
    "BOOTSTRAP_ENV",
    "HOST",
    "POLL_INTERVAL",
    "SCRAM_MECHANISM",
    "SUPER_USER",
    "BrokerError",
    "external_bootstrap",
    "free_port",
    "free_ports",
]

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
HOST = "127.0.0.1"
POLL_INTERVAL = 0.2
#: The administrator of a SASL broker (a super user): the launcher, topic creation, ACLs.
SUPER_USER = "admin"
SCRAM_MECHANISM = "SCRAM-SHA-512"


class BrokerError(RuntimeError):
    """The broker (or the tooling around it) could not do what was asked."""


def free_ports(count: int) -> list[int]:
    # Keep every socket open until all are bound, so the ports are distinct from each other.
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def external_bootstrap() -> str | None:
    """The bootstrap servers of an already running cluster, if ``KAFKA_BOOTSTRAP_SERVERS`` is set.

    Callers that get an address back must not start a broker of their own.
    """
    value = os.environ.get(BOOTSTRAP_ENV, "").strip()
    return value or None
