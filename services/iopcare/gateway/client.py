"""The gateway's gRPC clients: one channel per service, every call made as the caller.

Identity: the gateway forwards the caller's own bearer token (verified here first) in the call's
`authorization` metadata. The services verify it again and apply their own rules (care team,
labels, consent) to the real caller, and their audit rows name the EHR, not the gateway. The
gateway cannot mint tokens, so a compromised gateway cannot act as anyone who is not calling it.
The gateway's own checks (SMART scopes) come on top of the services' rules, never instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from iopcare.careplan.v1 import careplan_service_pb2_grpc as careplan_grpc
from iopcare.gateway.errors import from_grpc
from iopcare.gateway.settings import GatewaySettings
from iopcare.kit import logcontext
from iopcare.kit.auth import Principal
from iopcare.kit.settings import ConfigurationError
from iopcare.notes.v1 import notes_service_pb2_grpc as notes_grpc
from iopcare.scheduling.v1 import scheduling_service_pb2_grpc as scheduling_grpc

T = TypeVar("T")

#: How often a call that failed with ABORTED (a database conflict worth retrying, e.g. two
#: concurrent registrations of one patient) is tried again. Every write the gateway makes carries
#: a request id, so a retry never applies a change twice.
ABORTED_RETRIES = 3


#: The services the gateway calls, in the order of their channels.
SERVICE_NAMES = ("careplan", "scheduling", "notes")


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one REST request: who, with which token and scopes."""

    principal: Principal
    token: str
    scopes: tuple[Any, ...]
    #: SMART launch context: the one patient `patient/` scopes apply to.
    patient: str | None = None

    @property
    def metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")]


def channel_credentials(settings: GatewaySettings) -> grpc.ChannelCredentials | None:
    """TLS to the services when a CA is configured, presenting the gateway's client certificate
    when one is (services with a client CA refuse a handshake without one). A half-configured
    pair is refused at start rather than silently connecting without the certificate."""
    cert, key = settings.grpc_client_cert_file, settings.grpc_client_key_file
    if (cert is None) != (key is None):
        raise ConfigurationError(
            "set both IOPCARE_GATEWAY_GRPC_CLIENT_CERT_FILE and "
            "IOPCARE_GATEWAY_GRPC_CLIENT_KEY_FILE, or neither"
        )
    if settings.grpc_ca_file is None:
        if cert is not None:
            raise ConfigurationError(
                "a client certificate needs TLS: set IOPCARE_GATEWAY_GRPC_CA_FILE as well"
            )
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=settings.grpc_ca_file.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )


class Services:
    """Channels and stubs to careplan, scheduling and notes."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.timeout = settings.call_timeout_seconds
        credentials = channel_credentials(settings)

        def channel(address: str) -> grpc.Channel:
            if credentials is not None:
                return grpc.secure_channel(address, credentials)
            return grpc.insecure_channel(address)

        self._channels = [
            channel(settings.careplan_address),
            channel(settings.scheduling_address),
            channel(settings.notes_address),
        ]
        self.careplan = careplan_grpc.CarePlanServiceStub(self._channels[0])
        self.scheduling = scheduling_grpc.SchedulingServiceStub(self._channels[1])
        self.notes = notes_grpc.NotesServiceStub(self._channels[2])
        self._health = {
            name: health_pb2_grpc.HealthStub(channel)
            for name, channel in zip(SERVICE_NAMES, self._channels, strict=True)
        }

    def health(self, timeout: float) -> dict[str, str]:
        """Each service's overall gRPC health status name (SERVING, NOT_SERVING, ...), or
        UNREACHABLE when the check failed (down, refused, timed out). The three checks run at once;
        the health service needs no token (kit.rpc), so none is sent."""
        request = health_pb2.HealthCheckRequest(service="")
        pending = {
            name: stub.Check.future(request, timeout=timeout) for name, stub in self._health.items()
        }
        statuses: dict[str, str] = {}
        for name, future in pending.items():
            try:
                reply = future.result()
                statuses[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError:
                statuses[name] = "UNREACHABLE"
        return statuses

    def call(self, caller: Caller, method: Callable[..., T], request: Any) -> T:
        """Calls one RPC as the caller; a failure becomes the FhirHttpError it means."""
        for attempt in range(ABORTED_RETRIES + 1):
            try:
                # The request id and trace travel to the service (kit.logcontext, kit.tracing).
                metadata = [*caller.metadata, *logcontext.outgoing()]
                return method(request, metadata=metadata, timeout=self.timeout)
            except grpc.RpcError as exc:
                call: Any = exc
                if call.code() == grpc.StatusCode.ABORTED and attempt < ABORTED_RETRIES:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise from_grpc(exc) from None
        raise AssertionError("unreachable")

    def send(self, caller: Caller, service: str, request: Any) -> Any:
        """Calls the RPC of `service` (careplan, scheduling or notes) that `request` is for
        (`GetGoalRequest` goes to `GetGoal`): one way to call every service by its requests."""
        rpc = getattr(getattr(self, service), type(request).__name__.removesuffix("Request"))
        return self.call(caller, rpc, request)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
