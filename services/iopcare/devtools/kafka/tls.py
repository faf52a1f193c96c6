"""TLS for the development broker: its keystore and a throwaway certificate authority.

The broker (Java 17) reads its own key and certificate chain from a PKCS12 keystore and the
certificates it trusts (clients' CA for mTLS, its own CA towards itself) from a PEM truststore;
kafka-python clients read PEM files. `make_test_pki` makes all of them for tests and local runs:
a CA, a broker certificate for 127.0.0.1/localhost, and client certificates whose common name is
the Kafka principal (``User:<name>``) under mTLS. Nothing here is fit for production keys.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from iopcare.devtools.kafka.common import HOST, SUPER_USER

__all__ = ["BrokerTls", "ThrowawayPki", "make_test_pki"]


@dataclass(frozen=True)
class BrokerTls:
    """What a TLS listener of the development broker needs.

    ``client_auth``: the listener requires a client certificate signed by ``ca_file`` (mTLS);
    the launcher's own clients (readiness, topics, ACLs) then present ``admin_certfile`` and
    ``admin_keyfile``.
    """

    keystore: Path
    keystore_password: str = field(repr=False)
    ca_file: Path
    client_auth: bool = False
    admin_certfile: Path | None = None
    admin_keyfile: Path | None = None


@dataclass(frozen=True)
class ThrowawayPki:
    """A throwaway CA's files: ``ca_file`` (PEM), the broker's keystore, client certificates."""

    ca_file: Path
    keystore: Path
    keystore_password: str = field(repr=False)
    #: name -> (certificate PEM, private key PEM); the name is the certificate's common name.
    clients: dict[str, tuple[Path, Path]]

    def broker_tls(self, client_auth: bool = False) -> BrokerTls:
        admin = self.clients.get(SUPER_USER)
        return BrokerTls(
            keystore=self.keystore,
            keystore_password=self.keystore_password,
            ca_file=self.ca_file,
            client_auth=client_auth,
            admin_certfile=admin[0] if admin else None,
            admin_keyfile=admin[1] if admin else None,
        )


_Issuer = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def make_test_pki(
    folder: Path, clients: Iterable[str] = (SUPER_USER,), days: int = 1
) -> ThrowawayPki:
    """A new CA in ``folder`` (created 0700; keys 0600) with a broker keystore for 127.0.0.1 and
    localhost and one client certificate per name in ``clients``."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    lifetime = dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("iopcare test CA", ca_key, None, lifetime, server=False, is_ca=True)
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    issuer = (ca, ca_key)

    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker = _certificate("localhost", broker_key, issuer, lifetime, server=True, is_ca=False)
    password = secrets.token_urlsafe(18)
    keystore = folder / "broker.p12"
    _write_private(
        keystore,
        pkcs12.serialize_key_and_certificates(
            b"broker",
            broker_key,
            broker,
            [ca],
            serialization.BestAvailableEncryption(password.encode()),
        ),
    )
    issued = {}
    for name in dict.fromkeys(clients):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(name, key, issuer, lifetime, server=False, is_ca=False)
        cert_path, key_path = folder / f"{name}.crt.pem", folder / f"{name}.key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        issued[name] = (cert_path, key_path)
    return ThrowawayPki(
        ca_file=ca_file, keystore=keystore, keystore_password=password, clients=issued
    )


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: _Issuer | None,
    lifetime: dt.timedelta,
    *,
    server: bool,
    is_ca: bool,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if not is_ca:
        # The broker's certificate also serves it as a client (the inter-broker listener).
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
                ),
                critical=False,
            )
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)
