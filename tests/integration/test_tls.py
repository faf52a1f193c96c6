"""gRPC listeners speak TLS when configured, and require client certificates with a client CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from iopcare.careplan.v1 import careplan_service_pb2 as pb
from iopcare.careplan.v1 import careplan_service_pb2_grpc as pb_grpc
from tests.support import harness


def _certificate(
    folder: Path,
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> tuple[Path, Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, cert, key


def test_mutual_tls_refuses_clients_without_a_certificate(
    tmp_path: Path, data_dir: Path, kafka_bootstrap: str
) -> None:
    ca_cert, _, ca, ca_key = _certificate(tmp_path, "ca")
    server_cert, server_key, _, _ = _certificate(tmp_path, "server", (ca, ca_key))
    client_cert, client_key, _, _ = _certificate(tmp_path, "client", (ca, ca_key))
    settings = harness.settings_for(data_dir, kafka_bootstrap).model_copy(
        update={
            "tls_cert_file": server_cert,
            "tls_key_file": server_key,
            "tls_client_ca_file": ca_cert,
        }
    )
    runtime = harness.build("careplan", settings, f"sqlite:///{tmp_path / 'careplan.db'}")
    runtime.start()
    address = f"localhost:{runtime.port}"
    try:
        good = grpc.ssl_channel_credentials(
            root_certificates=ca_cert.read_bytes(),
            private_key=client_key.read_bytes(),
            certificate_chain=client_cert.read_bytes(),
        )
        with grpc.secure_channel(address, good) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            # TLS authenticates the peer; the call still needs its bearer token.
            with pytest.raises(grpc.RpcError) as caught:
                pb_grpc.CarePlanServiceStub(channel).GetCarePlan(
                    pb.GetCarePlanRequest(id="x"), timeout=5
                )
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        no_client_cert = grpc.ssl_channel_credentials(root_certificates=ca_cert.read_bytes())
        for channel in (
            grpc.secure_channel(address, no_client_cert),
            grpc.insecure_channel(address),
        ):
            with channel, pytest.raises(grpc.RpcError) as caught:
                health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        runtime.stop(grace=0.2)
