"""How the runbooks reach the records database (pg8000): verify-full TLS for every host but a loopback one, SCRAM
logins, the canary rows. TLS is proved against a fake server that speaks PostgreSQL's TLS negotiation with a
certificate made here, since the sandbox's embedded PostgreSQL has no TLS."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pg8000.dbapi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dr_runbooks.runbooks import canary
from dr_runbooks.runbooks.canary import DatabaseTlsError, DbEndpoint, PostgresCanary, connect, tls_context
from ehr_dr_sandbox.postgres_pair import pair_state_dir, running_pair
from ehr_dr_sandbox.records_schema import apply_schema, ensure_database

AURORA_HOST = "ehr-dr-test.cluster-abc123.us-east-1.rds.amazonaws.com"


def endpoint(host: str = AURORA_HOST, port: int = 5432, user: str = "tester", password: str = "secret",
             database: str = "records") -> DbEndpoint:
    return DbEndpoint(host=host, port=port, database=database, username=user, password=password)


# --- certificates and a fake TLS server ----------------------------------------------------------------------------

def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(directory: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    bundle = directory / f"{name}.pem"
    bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, bundle


def server_context(directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                   host: str) -> ssl.SSLContext:
    """A server's TLS context whose certificate for `host` the CA signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = directory / f"{host}.crt", directory / f"{host}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


class FakeServer:
    """Answers PostgreSQL's SSLRequest with `answer` ('S': TLS, 'N': no TLS), then, over TLS, records the startup
    message it is sent and refuses the login with a FATAL error naming what it saw."""

    def __init__(self, context: ssl.SSLContext | None, answer: bytes = b"S"):
        self.context, self.answer = context, answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.ssl_requests: list[bytes] = []
        self.startup: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            self.ssl_requests.append(conn.recv(8))
            conn.sendall(self.answer)
            if self.answer != b"S" or self.context is None:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    (length,) = struct.unpack("!i", tls.recv(4))
                    self.startup.append(tls.recv(length - 4))
                    fields = b"SFATAL\0C28000\0Mfake server saw the login over TLS\0\0"
                    tls.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields + b"Z\0\0\0\5I")
            except (ssl.SSLError, OSError):  # the client refused our certificate
                pass

    def close(self) -> None:
        self.thread.join(timeout=5)
        self.listener.close()


@pytest.fixture
def aurora_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeServer]]:
    """Makes `AURORA_HOST` lead to the fake server appended to the yielded list (as DNS would), host name kept."""
    servers: list[FakeServer] = []
    real = socket.create_connection

    def to_fake(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        assert address[0] == AURORA_HOST, address
        return real(("127.0.0.1", servers[-1].port), *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", to_fake)
    yield servers
    for server in servers:
        server.close()


@pytest.fixture
def rds_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A CA standing in for RDS's, its bundle named by PGSSLROOTCERT."""
    key, cert, bundle = make_ca(tmp_path, "rds-ca")
    monkeypatch.setenv(canary.CA_BUNDLE_VARIABLE, str(bundle))
    return key, cert


# --- which TLS ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_loopback_host_is_the_sandbox_and_is_reached_without_tls(host: str, monkeypatch: pytest.MonkeyPatch,
                                                                    ) -> None:
    monkeypatch.delenv(canary.CA_BUNDLE_VARIABLE, raising=False)
    assert tls_context(host) is None


def test_any_other_host_gets_certificate_and_host_name_verification_against_the_bundle(
        rds_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    context = tls_context(AURORA_HOST)
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.cert_store_stats()["x509_ca"] == 1


@pytest.mark.parametrize("host", ["10.0.1.23", "192.0.2.2", "localhost.example.com"])
def test_a_private_address_or_a_name_is_not_taken_for_loopback(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(canary.CA_BUNDLE_VARIABLE, raising=False)
    with pytest.raises(DatabaseTlsError):
        tls_context(host)


def test_without_a_ca_bundle_a_remote_database_is_refused_before_any_connection(monkeypatch: pytest.MonkeyPatch,
                                                                                ) -> None:
    monkeypatch.delenv(canary.CA_BUNDLE_VARIABLE, raising=False)
    monkeypatch.setattr(socket, "create_connection", lambda *args, **kwargs: pytest.fail("a connection was opened"))
    with pytest.raises(DatabaseTlsError, match=rf"^cannot verify the TLS certificate of {AURORA_HOST}: set "
                                               r"PGSSLROOTCERT to the RDS CA bundle \(global-bundle.pem\)$"):
        connect(endpoint())


def test_an_unreadable_ca_bundle_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(canary.CA_BUNDLE_VARIABLE, str(tmp_path / "missing.pem"))
    with pytest.raises(DatabaseTlsError, match=r"^PGSSLROOTCERT=.*missing.pem is not a readable CA bundle: [^\n]*$"):
        tls_context(AURORA_HOST)


# --- TLS on the wire ------------------------------------------------------------------------------------------------

def test_the_login_goes_over_tls_to_a_server_the_bundle_vouches_for(
        tmp_path: Path, rds_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
        aurora_at: list[FakeServer]) -> None:
    aurora_at.append(server := FakeServer(server_context(tmp_path, *rds_ca, AURORA_HOST)))
    with pytest.raises(pg8000.dbapi.DatabaseError, match="fake server saw the login over TLS"):
        connect(endpoint())
    assert server.ssl_requests == [struct.pack("!ii", 8, 80877103)]
    assert b"user\0tester\0" in server.startup[0]


def test_a_server_certificate_from_another_ca_is_refused(
        tmp_path: Path, rds_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
        aurora_at: list[FakeServer]) -> None:
    other_key, other_cert, _ = make_ca(tmp_path, "not-rds")
    aurora_at.append(server := FakeServer(server_context(tmp_path, other_key, other_cert, AURORA_HOST)))
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
        connect(endpoint())
    assert server.startup == []


def test_a_certificate_for_another_host_name_is_refused(
        tmp_path: Path, rds_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
        aurora_at: list[FakeServer]) -> None:
    impostor = "other-cluster.cluster-abc123.us-east-1.rds.amazonaws.com"
    aurora_at.append(server := FakeServer(server_context(tmp_path, *rds_ca, impostor)))
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        connect(endpoint())
    assert server.startup == []


def test_a_server_that_declines_tls_gets_no_plaintext_login(
        rds_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], aurora_at: list[FakeServer]) -> None:
    aurora_at.append(server := FakeServer(None, answer=b"N"))
    with pytest.raises(pg8000.dbapi.InterfaceError, match="Server refuses SSL"):
        connect(endpoint())
    assert server.startup == []


# --- a real PostgreSQL: SCRAM and the canary rows -----------------------------------------------------------------

@pytest.fixture(scope="module")
def records() -> Iterator[DbEndpoint]:
    """The sandbox's PostgreSQL with the records schema and a login that must authenticate with SCRAM-SHA-256."""
    with pair_state_dir() as state_dir, running_pair(state_dir, "us-east-1", "us-west-1") as pair:
        writer = pair.writer()
        with writer.connect() as admin:
            ensure_database(admin, "records", "ehr_admin")
            admin.execute("SET password_encryption = 'scram-sha-256'")
            admin.execute("CREATE ROLE runbooks LOGIN SUPERUSER PASSWORD 'canary-secret'")
        hba = writer.data_dir / "pg_hba.conf"
        hba.write_text("host all runbooks 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        writer.query_one("SELECT pg_reload_conf()")
        with writer.connect("records") as conn:
            apply_schema(conn)
        yield endpoint("127.0.0.1", writer.port, "runbooks", "canary-secret")


def test_the_runbooks_log_in_with_scram(records: DbEndpoint) -> None:
    with connect(records) as connection:
        (identity,) = connection.execute("SELECT system_user").fetchone()
    assert identity == "scram-sha-256:runbooks"


def test_a_wrong_password_is_refused(records: DbEndpoint) -> None:
    with pytest.raises(pg8000.dbapi.DatabaseError, match="password authentication failed"):
        connect(records.model_copy(update={"password": "wrong"}))


def test_a_canary_is_written_once_and_found_with_its_first_time(records: DbEndpoint) -> None:
    first = PostgresCanary().write(records, "run-once", "us-east-1")
    again = PostgresCanary().write(records, "run-once", "us-east-1")
    assert again == first
    assert PostgresCanary().find(records, "run-once") == first
    assert first.tzinfo is not None


def test_an_unknown_canary_is_not_found(records: DbEndpoint) -> None:
    assert PostgresCanary().find(records, "never-written") is None


def test_the_newest_canary_is_the_last_written(records: DbEndpoint) -> None:
    PostgresCanary().write(records, "older", "us-east-1")
    newest = PostgresCanary().write(records, "newer", "us-east-1")
    assert PostgresCanary().newest(records) == newest
