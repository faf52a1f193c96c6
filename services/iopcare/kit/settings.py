"""Typed settings, read from the environment.

`Settings` holds what every process shares (prefix `IOPCARE_`); `ServiceSettings` holds one
service's own (prefix `IOPCARE_<SERVICE>_`, e.g. `IOPCARE_CAREPLAN_DATABASE_URL`). Defaults make
`make run` work on a laptop: SQLite files and a broker on 127.0.0.1:9092, all under `var/`.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import date, time
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from iopcare.kit import topics

REPO_ROOT = Path(__file__).resolve().parents[3]

#: gRPC ports of the services when nothing else is configured (issue 2).
DEFAULT_PORTS = {"careplan": 50051, "scheduling": 50052, "notes": 50053}
#: Room for a Kafka record's key, CloudEvents headers, signature and batch framing on top of the
#: resource itself.
KAFKA_RECORD_OVERHEAD_BYTES = 64 * 1024


class ConfigurationError(RuntimeError):
    """A setting the process cannot run without is missing or wrong; the message names it."""


class TrustedIssuer(BaseModel):
    """An external authorization server whose access tokens are accepted (SMART Backend
    Services): tokens whose `iss` is `issuer`, signed by a key of the JWKS at `jwks_url` (looked
    up by the token's `kid`), for `audience` (empty: `IOPCARE_TOKEN_AUDIENCE`)."""

    issuer: str
    jwks_url: str
    audience: str = ""
    #: The role its tokens act in. Only outside roles: never `service` (the internal identity).
    role: str = "system"
    #: Its token endpoint, advertised in `.well-known/smart-configuration` when the embedded
    #: authorization server is off.
    token_endpoint: str = ""
    #: Its authorization endpoint (SMART App Launch, authorization code with PKCE): when set, the
    #: discovery document advertises this issuer for app launch (`gateway.smart`).
    authorization_endpoint: str = ""

    @field_validator("role")
    @classmethod
    def _outside_role(cls, value: str) -> str:
        if value == "service":
            raise ValueError("an external issuer cannot grant the internal role 'service'")
        return value


class Settings(BaseSettings):
    """Settings every iopcare process shares."""

    model_config = SettingsConfigDict(env_prefix="IOPCARE_", extra="ignore")

    #: Where SQLite files, the local broker's storage and development keys live.
    data_dir: Path = REPO_ROOT / "var"
    #: Kafka bootstrap servers. The conventional KAFKA_BOOTSTRAP_SERVERS is accepted too.
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("IOPCARE_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    #: Prefix of every topic name on the broker (e.g. `staging.`); empty in a dedicated cluster.
    topic_prefix: str = ""
    #: Partitions of each topic the project creates (IOPCARE_TOPIC_PARTITIONS). A consumer group
    #: spreads partitions over its members, so a service can have at most this many busy
    #: replicas per topic; one patient's events stay on one partition (key = patient id), so the
    #: count is fixed once topics exist (more partitions would move patients). 3 on a laptop, 6
    #: in the deploy files.
    topic_partitions: int = Field(default=topics.PARTITIONS, ge=1, le=1000)
    #: Retention of the event topics (`retention.ms`, cleanup.policy=delete; kit.topics says why
    #: not compaction). 14 days: a consumer down over a long weekend, or a database restored
    #: from last night's dump, still finds every event it has not applied (docs/operations.md).
    topic_retention_ms: int = Field(default=14 * 24 * 3600 * 1000, ge=3600 * 1000)
    #: Retention of the dead-letter topics: 90 days, time to investigate and replay a parked
    #: event long after the alert.
    dead_letter_retention_ms: int = Field(default=90 * 24 * 3600 * 1000, ge=3600 * 1000)
    #: `segment.ms` of every topic: a segment is deleted whole, so an event lives at most
    #: retention + segment.ms; one day keeps that close to the retention.
    topic_segment_ms: int = Field(default=24 * 3600 * 1000, ge=60 * 1000)
    #: How the Kafka clients (relay, consumers, dead-letter producer, admin) reach the brokers:
    #: PLAINTEXT (a development broker on loopback only), SASL_PLAINTEXT, SSL or SASL_SSL
    #: (production: the deploy files require it, since events carry patient data). Outside
    #: development mode a protocol without TLS is refused unless every broker is on loopback.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"] = "PLAINTEXT"
    #: SASL mechanism; SCRAM keeps the password off the wire (PLAIN only under TLS).
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    #: This process's Kafka principal (one per service: broker ACLs let it write only its own
    #: topic and read what it consumes) and its password, or a file holding the password.
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = None
    #: TLS to the brokers: CA bundle that signed their certificates, and a client certificate and
    #: key where the brokers authenticate clients by certificate (mTLS).
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    #: Folder of the services' event signing keys (kit.signing: `<service>.pem` private,
    #: `<service>.pub.pem` public). Empty: development keys generated under data_dir.
    event_keys_dir: Path | None = None
    #: Encrypt every event's value on the topics with the producer's topic key (kit.payloads,
    #: AES-256-GCM). On in `make run` and the deploy files; off by default so that tests and
    #: tools can read the topics they inspect.
    event_encryption: bool = False
    #: Issuer and audience every bearer token must carry.
    token_issuer: str = "https://iopcare.local/dev"
    token_audience: str = "iopcare"
    #: PEM file of the key that verifies tokens. Empty: the development key under data_dir.
    token_public_key_file: Path | None = None
    #: PEM file of the key `iopcare token` signs with (development only).
    token_private_key_file: Path | None = None
    #: Accepted signature algorithms (asymmetric only: a shared secret would let every service
    #: mint tokens).
    token_algorithms: list[str] = ["ES384", "RS384"]
    #: External authorization servers whose tokens are accepted besides the ones `token_issuer`
    #: signs (a JSON list: `[{"issuer": ..., "jwks_url": ..., "audience": ...}]`).
    token_trusted_issuers: list[TrustedIssuer] = []
    #: Seconds a fetched JWKS is used before it is fetched again.
    token_jwks_max_age_seconds: float = 300
    #: Least seconds between two fetches of one JWKS: a token with an unknown `kid` makes the
    #: verifier fetch the set again (key rotation), at most this often (a flood of forged `kid`s
    #: must not become a flood of requests to the identity provider).
    token_jwks_refetch_seconds: float = 10
    #: The embedded authorization server of the gateway (`POST /auth/token`, SMART Backend
    #: Services client_credentials with a private_key_jwt assertion, clients registered with
    #: `iopcare client register`).
    auth_server_enabled: bool = True
    #: Lifetime of the access tokens it issues (SMART suggests five minutes).
    auth_server_token_lifetime_seconds: int = 300
    #: Token requests one peer address may have in progress at once, and waiting beyond those;
    #: more are 429 with Retry-After (a client flooding the endpoint cannot starve the others).
    auth_server_max_requests_per_client: int = 4
    auth_server_max_queued_per_client: int = 16
    #: Its token endpoint's public URL, the `aud` client assertions must carry. Empty: the URL
    #: the request reached (right unless a proxy rewrites the host or the scheme).
    auth_server_token_endpoint: str = ""
    #: File of the key audit rows are sealed with (HMAC-SHA256, kit.audit). Empty: a development
    #: key under data_dir. Production keeps it out of the database's reach.
    audit_key_file: Path | None = None
    #: Seconds of clock skew tolerated when checking `exp`, `nbf` and `iat`.
    token_leeway_seconds: int = 30
    #: Longest token lifetime (exp - iat) accepted, by the gateway and the services alike: SMART
    #: Backend Services tokens are short-lived (the spec suggests five minutes); a long-lived
    #: bearer token is a standing credential. The gateway's older variable is still read.
    token_max_lifetime_seconds: int = Field(
        default=3600,
        validation_alias=AliasChoices(
            "IOPCARE_TOKEN_MAX_LIFETIME_SECONDS", "IOPCARE_GATEWAY_MAX_TOKEN_LIFETIME_SECONDS"
        ),
    )
    #: The program's time zone: times are stored in UTC and presented in this zone.
    program_timezone: str = "America/New_York"
    #: How many days ahead scheduling proposes sessions for a plan activity (the rolling horizon).
    scheduling_horizon_days: int = 14
    #: Program intensity rules: program -> [minimum, maximum] hours a week (maximum 0: none).
    #: ASAM level 2.1 IOP: adults 9 to 19 hours a week, adolescents at least 6.
    scheduling_intensity_rules: dict[str, list[float]] = {
        "adult": [9.0, 19.0],
        "adolescent": [6.0, 0.0],
    }
    #: Seconds between extensions of the plans' rolling horizon (each run extends every active
    #: series to now + scheduling_horizon_days; daily is enough, hourly costs nothing).
    scheduling_horizon_check_seconds: float = 3600
    #: Days the whole program is closed (local dates); plan series skip them.
    scheduling_program_holidays: list[date] = []
    #: Local time by which a patient with a session that day checks in (daily check-in).
    scheduling_checkin_cutoff: time = time(10, 0)
    #: Seconds between checks for missed check-ins (a miss is reported within this long).
    scheduling_checkin_check_seconds: float = 60
    #: The program whose rule the weekly below-minimum check applies.
    scheduling_default_program: str = "adult"
    #: Local time school ends on school days (Monday to Friday): a plan's sessions for a patient
    #: under 18 that would start earlier start then instead (after-school sessions).
    scheduling_school_day_end: time = time(15, 30)
    #: Seconds between checks for patients whose last week fell below the minimum.
    scheduling_intensity_check_seconds: float = 600
    #: Folder of program templates (JSON) plans are drafted from; empty: the shipped examples.
    plan_templates_dir: Path | None = None
    #: Seconds between checks for plans whose review date has come.
    review_check_seconds: float = 3600
    #: Days between plan reviews (the program's setting; a crisis makes a review due at once).
    review_interval_days: int = 30
    #: Hours inbound medications may stay unreconciled before the plan is not ready and the team
    #: gets a task (checked every review_check_seconds).
    medication_reconciliation_hours: float = 48
    #: Medical monitoring thresholds overriding careplan's defaults, by name (sources in
    #: docs/clinical-thresholds.md), e.g. {"cows_min": 13, "lithium_above": 1.2}.
    monitoring_thresholds: dict[str, float] = {}
    #: Minutes after which an unacknowledged crisis alert is escalated again (to the whole team).
    crisis_escalation_minutes: float = 15
    #: Seconds between checks for crisis alerts to re-escalate.
    crisis_check_seconds: float = 30
    #: After-hours coverage (notes): when the program's staff answer in the team thread (local
    #: days and times, `mon-fri 08:00-18:00`; holidays are `scheduling_program_holidays`).
    #: Outside these hours an urgent alert also goes to the clinician on call (the roster).
    oncall_program_hours: str = "mon-fri 08:00-18:00"
    #: Minutes an alert sent to a clinician on call waits for an acknowledgement before it goes
    #: to the next clinician on the roster.
    oncall_escalation_minutes: float = 10
    #: Seconds between checks for alerts to escalate along the roster.
    oncall_check_seconds: float = 30
    #: Whether a missed daily check-in also goes to the clinician on call: never, out-of-hours
    #: (only when the program is closed) or always.
    oncall_missed_checkin: str = "out-of-hours"
    #: notes WatchThread: seconds between re-reads of a watched thread when no commit woke it
    #: (commits in this process wake streams at once; this bounds the delay for other replicas').
    notes_watch_poll_seconds: float = 1.0
    #: Relay: how long to wait between outbox scans when nothing was pending.
    relay_idle_seconds: float = 0.05
    #: Relay: rows published per batch.
    relay_batch_size: int = 500
    #: Consumer: how many times a message whose handler fails (for a reason other than an
    #: unreachable database) is retried before it goes to the dead-letter topic.
    consumer_max_attempts: int = 3
    #: Largest FHIR JSON document accepted on any edge, in bytes.
    max_resource_bytes: int = 4 * 1024 * 1024
    log_level: str = "INFO"
    #: Seconds between readiness probes (kit.health): the database and the brokers are asked,
    #: and the gRPC health status follows (NOT_SERVING while either cannot be reached).
    readiness_check_seconds: float = 2.0
    #: TLS for every gRPC listener: PEM certificate chain and key. Both empty: plaintext (local
    #: development only; production sets them, or terminates TLS in a mesh sidecar).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: With a client CA, listeners require client certificates signed by it (mTLS).
    tls_client_ca_file: Path | None = None

    # -- hardening (issue 10): development mode, keys, per-client limits ------------------------
    #: Development mode: generated keys (token signing pair, audit key under data_dir/dev-keys)
    #: are allowed. `make run`, `iopcare up` and the test harness set it; production leaves it
    #: false, and then every process refuses to start without its configured keys
    #: (`require_keys`), so no pod can run on a key generated into its own data folder.
    dev_mode: bool = False
    #: gRPC: most calls (unary or streaming) one client (the token's subject; the peer address
    #: without a token) may have in flight on one server; more are RESOURCE_EXHAUSTED with a
    #: RetryInfo. Empty: half the server's worker threads (at least 1); 0: no limit.
    rpc_max_calls_per_client: int | None = None
    #: Seconds a client refused for exceeding its share is told to wait (gRPC RetryInfo).
    rpc_retry_after_seconds: float = 1.0
    #: notes WatchThread: most streams one principal may hold open at once on one server.
    notes_watch_max_per_client: int = 2

    def require_keys(self, *, audit_key: bool) -> None:
        """Refuses (ConfigurationError naming the settings) to run outside development mode
        without the keys an operator must provide: the token verification key and, for a
        service that seals audit rows, the audit key."""
        if self.dev_mode:
            return
        missing = []
        if self.token_public_key_file is None:
            missing.append("IOPCARE_TOKEN_PUBLIC_KEY_FILE (PEM key that verifies bearer tokens)")
        if audit_key and self.audit_key_file is None:
            missing.append("IOPCARE_AUDIT_KEY_FILE (key of the audit rows' HMAC seal)")
        if audit_key and self.event_keys_dir is None:
            # A service signs its events and verifies the others' (kit.signing): keys generated
            # into a pod's own data folder would be trusted by nobody and forgeable by anyone
            # who can write that folder.
            missing.append("IOPCARE_EVENT_KEYS_DIR (the services' event signing and topic keys)")
        if missing:
            raise ConfigurationError(
                "refusing to start outside development mode without configured keys; set "
                + "; ".join(missing)
                + " (or IOPCARE_DEV_MODE=true on a developer's machine)"
            )

    @property
    def auth_server_db_path(self) -> Path:
        """The embedded authorization server's registered clients and used assertion ids."""
        return self.data_dir / "auth" / "auth-server.db"

    @cached_property
    def dev_key_dir(self) -> Path:
        return self.data_dir / "dev-keys"

    @property
    def audit_key_path(self) -> Path:
        return self.audit_key_file or self.dev_key_dir / "audit.key"

    @property
    def kafka_max_message_bytes(self) -> int:
        """The largest Kafka record: the largest resource the API accepts plus room for the
        headers. One number for the producer (`max_request_size`), the consumer's fetch size and
        the broker and topics (`message.max.bytes`, `max.message.bytes`), so that whatever the
        API accepted can be published (issue 10, defect 7)."""
        return self.max_resource_bytes + KAFKA_RECORD_OVERHEAD_BYTES

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection options every kafka-python client of this process uses (the relay, the
        consumers and their dead-letter producer, the readiness check, topic creation).

        Raises ConfigurationError, naming the variable, for an incomplete security setting (a
        SASL protocol without user or password, a client certificate without its key, a file
        that cannot be read), rather than a client that retries a hopeless connection forever.
        """
        self.require_kafka_tls()
        options: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            if not self.kafka_sasl_username:
                raise ConfigurationError(
                    f"IOPCARE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                    "IOPCARE_KAFKA_SASL_USERNAME"
                )
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = self.kafka_password()
            if not options["sasl_plain_password"]:
                raise ConfigurationError(
                    f"IOPCARE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                    "IOPCARE_KAFKA_SASL_PASSWORD or IOPCARE_KAFKA_SASL_PASSWORD_FILE"
                )
        if self.kafka_security_protocol.endswith("SSL"):
            if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
                raise ConfigurationError(
                    "IOPCARE_KAFKA_SSL_CERTFILE and IOPCARE_KAFKA_SSL_KEYFILE come together "
                    "(the client certificate of mTLS and its key)"
                )
            options["ssl_check_hostname"] = True
            for option, path in (
                ("ssl_cafile", self.kafka_ssl_cafile),
                ("ssl_certfile", self.kafka_ssl_certfile),
                ("ssl_keyfile", self.kafka_ssl_keyfile),
            ):
                if path is not None:
                    if not path.is_file() or not os.access(path, os.R_OK):
                        raise ConfigurationError(
                            f"IOPCARE_KAFKA_{option.upper()}={path} is not a readable file"
                        )
                    options[option] = str(path)
        return options

    def require_kafka_tls(self) -> None:
        """Refuses a password sent in clear (SASL PLAIN without TLS) always, and, outside
        development mode, a protocol without TLS unless every broker is on loopback."""
        protocol = self.kafka_security_protocol
        if protocol.endswith("SSL"):
            return
        if protocol.startswith("SASL") and self.kafka_sasl_mechanism == "PLAIN":
            raise ConfigurationError(
                f"IOPCARE_KAFKA_SASL_MECHANISM=PLAIN sends the password in clear over "
                f"IOPCARE_KAFKA_SECURITY_PROTOCOL={protocol}; use SASL_SSL (or a SCRAM mechanism)"
            )
        if self.dev_mode:
            return
        remote = [host for host in _hosts(self.kafka_bootstrap_servers) if not _is_loopback(host)]
        if remote:
            raise ConfigurationError(
                f"refusing IOPCARE_KAFKA_SECURITY_PROTOCOL={protocol} (no TLS) outside "
                f"development mode for brokers not on loopback ({', '.join(remote)}); set "
                "IOPCARE_KAFKA_SECURITY_PROTOCOL=SASL_SSL or SSL (events carry patient data)"
            )

    def kafka_password(self) -> str:
        if self.kafka_sasl_password is not None:
            return self.kafka_sasl_password.get_secret_value()
        if self.kafka_sasl_password_file is not None:
            try:
                return self.kafka_sasl_password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"IOPCARE_KAFKA_SASL_PASSWORD_FILE={self.kafka_sasl_password_file} cannot be "
                    f"read: {exc.strerror}"
                ) from exc
        return ""


def _hosts(bootstrap_servers: str) -> list[str]:
    """The hosts of `host:port,[v6]:port,...` (a bare host without port is accepted)."""
    hosts = []
    for server in filter(None, (part.strip() for part in bootstrap_servers.split(","))):
        if server.startswith("["):
            hosts.append(server[1:].partition("]")[0])
        elif server.count(":") > 1:  # a bare IPv6 address
            hosts.append(server)
        else:
            hosts.append(server.partition(":")[0])
    return hosts


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServiceSettings(BaseSettings):
    """One service's own settings; build with `ServiceSettings.for_service(name)`."""

    # A neutral prefix for direct construction, so that a stray HOST or PORT variable in the
    # environment is never mistaken for ours; for_service() replaces it with the service's own.
    model_config = SettingsConfigDict(env_prefix="IOPCARE_SERVICE_", extra="ignore")

    name: str = ""
    #: SQLAlchemy URL. Empty: a SQLite file `<data_dir>/<service>.db`. A PostgreSQL URL may
    #: carry libpq's TLS parameters in its query (`?sslmode=verify-full&sslrootcert=...`) or
    #: take them from the four settings below, which are added to it (kit.db.with_tls).
    database_url: str = Field(default="", repr=False)
    #: TLS to PostgreSQL: libpq's sslmode. `verify-full` in production (the deploy files set
    #: it): the server's certificate must chain to `database_sslrootcert` and name the URL's
    #: host. Outside development mode a TCP URL without any sslmode is refused at start (libpq's
    #: default, `prefer`, falls back to plaintext and checks no certificate), and so are
    #: `prefer` and `allow` given explicitly; give `disable` or `require` explicitly where a mesh
    #: or a local socket protects the connection instead.
    database_sslmode: (
        Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None
    ) = None
    #: PEM bundle of the CA(s) that sign the server's certificate (`system`: the OS's roots).
    database_sslrootcert: Path | None = None
    #: Client certificate and key, where the server authenticates clients by certificate
    #: (pg_hba `cert`, or `clientcert=verify-full`); the key file must be 0600 (or 0640 root's).
    database_sslcert: Path | None = None
    database_sslkey: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    #: Kafka consumer group; replicas of one service share it so partitions spread across them.
    consumer_group: str = ""
    #: Worker threads of the gRPC server.
    grpc_workers: int = 16
    #: Processes serving the service on its one port (SO_REUSEPORT; iopcare.workers, ADR 0026).
    #: Each is a whole service (relay, consumers, periodic tasks) sharing what replicas share.
    processes: int = Field(default=1, ge=1, le=64)
    #: Port of the Prometheus `/metrics` endpoint (kit.metrics), on `host`. Empty: off (the
    #: default: one more open port is the operator's decision; the deploy files set it). 0: any
    #: free port (tests).
    metrics_port: int | None = None

    @model_validator(mode="after")
    def _database_tls(self) -> ServiceSettings:
        """Adds the TLS settings to the PostgreSQL URL (kit.db.with_tls; a contradiction with the
        URL, a missing file or TLS settings without a PostgreSQL URL is a ConfigurationError)."""
        from iopcare.kit.db import TlsConfigurationError, with_tls

        tls = {
            "sslmode": self.database_sslmode,
            "sslrootcert": self.database_sslrootcert,
            "sslcert": self.database_sslcert,
            "sslkey": self.database_sslkey,
        }
        if all(value is None for value in tls.values()):
            return self
        if not self.database_url:
            raise ConfigurationError(
                "database TLS settings (DATABASE_SSL*) are set but DATABASE_URL is not (the "
                "default database is a SQLite file)"
            )
        try:
            self.database_url = with_tls(self.database_url, **tls)
        except TlsConfigurationError as exc:
            raise ConfigurationError(str(exc)) from exc
        return self

    def require_database_tls(self) -> None:
        """Refuses (ConfigurationError) a PostgreSQL URL over TCP that says nothing of TLS, or
        whose sslmode (`allow`, `prefer`) may connect without it."""
        from iopcare.kit.db import is_postgres, tls_parameters, uses_tcp

        url = self.database_url
        if not (is_postgres(url) and uses_tcp(url)):
            return
        prefix = f"IOPCARE_{self.name.upper()}_"
        mode = tls_parameters(url).get("sslmode")
        if mode in ("allow", "prefer"):
            # Both fall back to plaintext (or start with it) and check no certificate.
            raise ConfigurationError(
                f"refusing sslmode={mode} for PostgreSQL over TCP outside development mode (it "
                f"may connect without TLS); set {prefix}DATABASE_SSLMODE=verify-full (or "
                f"require, verify-ca; `disable` only where something else protects the connection)"
            )
        if mode is None:
            raise ConfigurationError(
                f"refusing to reach PostgreSQL over TCP without a TLS mode outside development "
                f"mode; set {prefix}DATABASE_SSLMODE=verify-full and "
                f"{prefix}DATABASE_SSLROOTCERT (or sslmode in {prefix}DATABASE_URL; `disable` "
                f"only where something else protects the connection)"
            )

    @classmethod
    def for_service(cls, name: str, settings: Settings | None = None) -> ServiceSettings:
        settings = settings or Settings()
        loaded = cls(_env_prefix=f"IOPCARE_{name.upper()}_")  # type: ignore[call-arg]
        loaded.name = name
        if not loaded.database_url:
            loaded.database_url = f"sqlite:///{settings.data_dir / (name + '.db')}"
        if not loaded.port:
            loaded.port = DEFAULT_PORTS.get(name, 0)
        if not loaded.consumer_group:
            loaded.consumer_group = f"iopcare-{name}"
        if not settings.dev_mode:
            loaded.require_database_tls()
        return loaded
