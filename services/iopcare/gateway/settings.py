"""The gateway's own settings (prefix `IOPCARE_GATEWAY_`); shared ones come from kit.settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from iopcare.kit.settings import DEFAULT_PORTS


class GatewaySettings(BaseSettings):
    """Where the gateway listens and where the services it calls are."""

    model_config = SettingsConfigDict(env_prefix="IOPCARE_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    #: Port of the Prometheus `/metrics` endpoint (kit.metrics), on `host`. Empty: off (the
    #: default); 0: any free port.
    metrics_port: int | None = None
    #: Processes serving the gateway on its one port (SO_REUSEPORT; iopcare.workers, ADR 0026).
    #: The per-client admission limits are each process's own.
    processes: int = Field(default=1, ge=1, le=64)
    #: Path under which the FHIR base lives (`http://host:8080/fhir`).
    base_path: str = "/fhir"
    #: Largest request body accepted, in bytes; larger ones are refused with 413 before they are
    #: read whole (Content-Length first, then a count while streaming). 0: the shared
    #: IOPCARE_MAX_RESOURCE_BYTES (4 MiB by default).
    max_body_bytes: int = 0
    #: Most entries a batch, transaction or handoff Bundle may carry (more: 413, too costly).
    max_bundle_entries: int = 1000
    #: gRPC addresses of the services.
    careplan_address: str = f"127.0.0.1:{DEFAULT_PORTS['careplan']}"
    scheduling_address: str = f"127.0.0.1:{DEFAULT_PORTS['scheduling']}"
    notes_address: str = f"127.0.0.1:{DEFAULT_PORTS['notes']}"
    #: PEM root certificates for TLS to the services; empty: plaintext (local development).
    grpc_ca_file: Path | None = None
    #: The gateway's own client certificate (PEM chain) and key for services that require mTLS
    #: (IOPCARE_TLS_CLIENT_CA_FILE on their side); both or neither, and only with GRPC_CA_FILE.
    grpc_client_cert_file: Path | None = None
    grpc_client_key_file: Path | None = None
    #: Seconds one gRPC call may take.
    call_timeout_seconds: float = 10.0
    #: Hours within which a step-down handoff's intake appointment should be proposed.
    intake_window_hours: int = 72
    # -- fairness (issue 10): one client cannot take every place --------------------------------
    #: Requests served at once (the places every client shares). Below the worker-thread pool's
    #: 40 threads, so that /metadata (served outside these places) always finds a thread.
    max_active_requests: int = 32
    #: Requests one client (the token's subject; the peer address without a valid token) may
    #: have served at once...
    max_requests_per_client: int = 8
    #: ...and waiting for a place beyond those; more are answered 429 with Retry-After.
    max_queued_per_client: int = 32
    #: Seconds a refused client is told to wait (Retry-After, whole seconds).
    retry_after_seconds: int = 1
