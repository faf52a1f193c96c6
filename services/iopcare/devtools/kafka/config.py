"""The broker's ``server.properties`` and the storage format command: open or secured."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from iopcare.devtools.kafka.common import HOST, SCRAM_MECHANISM, SUPER_USER, BrokerError
from iopcare.devtools.kafka.jars import deploy_dir
from iopcare.devtools.kafka.tls import BrokerTls

__all__ = ["cluster_id", "format_arguments", "jaas_quote", "server_properties"]


def cluster_id() -> str:
    """A new cluster id, as `kafka-storage.sh random-uuid` makes one."""
    # Same format (URL-safe base64 of 16 random bytes), made here to save a JVM start. Kafka
    # never hands out ids starting with "-": they read like CLI options.
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def server_properties(
    *,
    broker_port: int,
    controller_port: int,
    log_dirs: Path,
    max_message_bytes: int,
    sasl_users: dict[str, str] | None,
    tls: BrokerTls | None = None,
    mtls_port: int | None = None,
) -> str:
    """The template of ``deploy/local/kafka`` filled in, secured when there are SASL users
    (SASL_PLAINTEXT, or SASL_SSL with ``tls``) or TLS alone (SSL); with ``mtls_port`` also an
    SSL listener there that requires a client certificate."""
    template = (deploy_dir() / "server.properties").read_text(encoding="utf-8")
    # Backslashes are escapes in .properties files.
    escaped_log_dirs = str(log_dirs).replace("\\", "\\\\")
    config = (
        template.replace("${controller_port}", str(controller_port))
        .replace("${broker_port}", str(broker_port))
        .replace("${log_dirs}", escaped_log_dirs)
        .replace("${max_message_bytes}", str(max_message_bytes))
    )
    if sasl_users:
        config = _secured(config, broker_port, controller_port, sasl_users, tls)
    elif tls is not None:
        config = _listeners(config, broker_port, controller_port, "SSL", "PLAINTEXT")
    if tls is not None:
        config += _tls_properties(tls)
        if mtls_port:
            config = _with_mtls_listener(config, mtls_port)
    # Fail here rather than with a cryptic Kafka config error if the template grows a new
    # placeholder this launcher does not know about.
    for line in config.splitlines():
        if "${" in line and not line.lstrip().startswith("#"):
            raise BrokerError(f"unfilled placeholder in server.properties: {line}")
    return config


def _listeners(
    config: str, broker_port: int, controller_port: int, client: str, controller: str
) -> str:
    """The template's open listeners replaced by a CLIENT listener (also the inter-broker one)
    speaking ``client`` and a CONTROLLER listener speaking ``controller``, both on loopback."""
    overridden = {
        "listeners",
        "advertised.listeners",
        "inter.broker.listener.name",
        "listener.security.protocol.map",
    }
    kept = [line for line in config.splitlines() if line.split("=", 1)[0].strip() not in overridden]
    return (
        "\n".join(kept)
        + f"""
# Written by the launcher (KafkaBroker): the listeners' security.
listeners=CLIENT://{HOST}:{broker_port},CONTROLLER://{HOST}:{controller_port}
advertised.listeners=CLIENT://{HOST}:{broker_port},CONTROLLER://{HOST}:{controller_port}
listener.security.protocol.map=CLIENT:{client},CONTROLLER:{controller}
inter.broker.listener.name=CLIENT
"""
    )


def _secured(
    config: str,
    broker_port: int,
    controller_port: int,
    users: dict[str, str],
    tls: BrokerTls | None,
) -> str:
    """The template's open listeners replaced by SASL ones and an authorizer.

    - Clients (and the broker towards itself) authenticate with SCRAM-SHA-512 on the client
      listener (over TLS with ``tls``: SASL_SSL); the credentials live in the cluster
      metadata, bootstrapped at format time.
    - The controller listener cannot use SCRAM (the credentials are only known once the
      quorum runs), so it takes PLAIN, with the super user alone in its JAAS configuration:
      an anonymous client reaches neither listener.
    - StandardAuthorizer with allow.everyone.if.no.acl.found=false: a principal may do only
      what an ACL allows it (grant_service_acls); the super user does anything.
    """
    if SUPER_USER not in users:
        raise BrokerError(f"a SASL broker needs the {SUPER_USER!r} user")
    password = jaas_quote(users[SUPER_USER])
    client = "SASL_SSL" if tls is not None else "SASL_PLAINTEXT"
    config = _listeners(config, broker_port, controller_port, client, "SASL_PLAINTEXT")
    credentials = f'username="{SUPER_USER}" password="{password}"'
    scram_login = f"org.apache.kafka.common.security.scram.ScramLoginModule required {credentials};"
    plain_login = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'{credentials} user_{SUPER_USER}="{password}";'
    )
    return f"""{config}
# Written by the launcher (KafkaBroker.sasl_users): SASL and ACLs.
sasl.enabled.mechanisms={SCRAM_MECHANISM}
sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}
listener.name.client.sasl.enabled.mechanisms={SCRAM_MECHANISM}
listener.name.client.scram-sha-512.sasl.jaas.config={scram_login}
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config={plain_login}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:{SUPER_USER}
allow.everyone.if.no.acl.found=false
"""


def _tls_properties(tls: BrokerTls) -> str:
    """The TLS of the CLIENT listener: the broker's key and chain (PKCS12), the CA it trusts (PEM:
    clients' certificates under mTLS, and its own towards itself) and the hostname check."""
    keystore = str(tls.keystore).replace("\\", "\\\\")
    truststore = str(tls.ca_file).replace("\\", "\\\\")
    password = _property_value(tls.keystore_password)
    return f"""
# Written by the launcher (KafkaBroker.tls): TLS on the client listener.
ssl.keystore.type=PKCS12
ssl.keystore.location={keystore}
ssl.keystore.password={password}
ssl.key.password={password}
ssl.truststore.type=PEM
ssl.truststore.location={truststore}
ssl.client.auth={"required" if tls.client_auth else "none"}
ssl.endpoint.identification.algorithm=https
ssl.enabled.protocols=TLSv1.3,TLSv1.2
# Under mTLS a certificate's common name is the principal (User:careplan), as SCRAM names it.
ssl.principal.mapping.rules=RULE:^CN=([a-zA-Z0-9._-]+).*$/$1/,DEFAULT
"""


def _with_mtls_listener(config: str, port: int) -> str:
    """``config`` with one more listener, MTLS: SSL, a client certificate required."""
    lines = []
    for line in config.splitlines():
        key = line.partition("=")[0]
        if key in ("listeners", "advertised.listeners"):
            line = f"{line},MTLS://{HOST}:{port}"
        elif key == "listener.security.protocol.map":
            line = f"{line},MTLS:SSL"
        lines.append(line)
    return "\n".join(lines) + "\nlistener.name.mtls.ssl.client.auth=required\n"


def _property_value(value: str) -> str:
    if any(c in value for c in "\\\n\r") or value != value.strip():
        raise BrokerError("TLS passwords may not contain backslashes, line breaks or edge spaces")
    return value


def jaas_quote(value: str) -> str:
    """``value`` as it may stand between quotes in a JAAS line (refused if it cannot)."""
    if any(c in value for c in '"\\;\n'):
        raise BrokerError("SASL passwords may not contain quotes, backslashes or semicolons")
    return value


def format_arguments(config_file: Path, sasl_users: dict[str, str] | None) -> list[str]:
    """The arguments of ``kafka.tools.StorageTool`` that format a new storage for the config."""
    arguments = [
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "-t",
        cluster_id(),
        "-c",
        str(config_file),
        "--ignore-formatted",
    ]
    for user, password in (sasl_users or {}).items():
        # SCRAM credentials must exist before the first start: nobody could authenticate to
        # create them afterwards (KIP-900).
        arguments += [
            "--add-scram",
            f"{SCRAM_MECHANISM}=[name={user},password={jaas_quote(password)}]",
        ]
    return arguments
