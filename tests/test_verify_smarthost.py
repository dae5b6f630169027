"""Challenge mail through a smarthost that wants STARTTLS and AUTH; several processes sharing the caps."""

from __future__ import annotations

import datetime
import ipaddress
import multiprocessing
import random
import ssl
import string
import threading
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fswl.errors import BadCode
from fswl.app.home import Home
from fswl.verify.pending import Pending, Record
from fswl.verify.settings import VerifySettings
from fswl.verify.verifier import Verifier
from tests.harness.mail import Sink, free_port

USER, PASSWORD = "fswl", "s3cret pass"


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls_smarthost(tmp_path: Path):
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            auth_required=True, authenticator=authenticator)
    controller.start()
    try:
        yield sink, port, cert
    finally:
        controller.stop()


def test_starttls_and_auth(home: Home, tmp_path: Path, tls_smarthost) -> None:
    sink, port, cert = tls_smarthost
    (tmp_path / "password").write_text(PASSWORD + "\n")
    settings = VerifySettings(smarthost=f"127.0.0.1:{port}", smarthost_tls="starttls", smarthost_ca_file=str(cert),
                              smarthost_user=USER, smarthost_password_file=str(tmp_path / "password"), spf_refuse=())
    verifier = Verifier(home, home.whitelist, settings, "wl.test", "http://127.0.0.1:8025")
    try:
        assert verifier.challenge("nat@example.org", ipaddress.ip_address("192.0.2.3")) is None
        assert sink.wait_for("nat@example.org")["Subject"] == "Please confirm mail you sent via 192.0.2.3"
        assert sink.messages[0][0] in ("", "<>"), "challenges go out with the null envelope sender"
    finally:
        verifier.close()


@pytest.mark.parametrize("change", [{"smarthost_tls": "none"}, {"smarthost_ca_file": ""}, {"smarthost_user": "x"}],
                         ids=["plain-refused", "unknown-ca", "bad-login"])
def test_a_smarthost_that_refuses_us(home: Home, tmp_path: Path, tls_smarthost, change) -> None:
    sink, port, cert = tls_smarthost
    settings = VerifySettings(**{"smarthost": f"127.0.0.1:{port}", "smarthost_tls": "starttls",
                                 "smarthost_ca_file": str(cert), "smarthost_user": USER,
                                 "smarthost_password": PASSWORD, "spf_refuse": (), **change})
    verifier = Verifier(home, home.whitelist, settings, "wl.test", "http://127.0.0.1:8025")
    try:
        assert verifier.challenge("oz@example.org", ipaddress.ip_address("192.0.2.3")) == "sending failed"
        assert sink.messages == [] and verifier.stats()["pending"] == 0
    finally:
        verifier.close()


def _flood(root: str, seed: int, count: int, results) -> None:
    rng = random.Random(seed)
    settings = VerifySettings(global_per_hour=150, per_domain_per_hour=1000, spf_refuse=())
    verifier = Verifier(Home(root), Home(root).whitelist, settings, "wl.test", "http://x", send=lambda settings, message: None)
    sent = 0
    for _ in range(count):
        local = "".join(rng.choices(string.ascii_lowercase, k=10))
        sent += verifier.challenge(f"{local}@example.org", ipaddress.IPv4Address(rng.randrange(1 << 24, 1 << 31))) is None
    verifier.close()
    results.put(sent)


def test_processes_share_the_caps_exactly(home: Home) -> None:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_flood, args=(str(home.root), seed, 1000, results)) for seed in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert sum(results.get(timeout=5) for _ in workers) == 150


def test_a_code_is_used_once_among_racing_threads(home: Home) -> None:
    pending = Pending(home.pending)
    pending.put(Record("ab" * 10, "confirm", "pat@example.org", "192.0.2.1", 0.0, 2 ** 31))
    wins, losses = [], []
    barrier = threading.Barrier(16)

    def take() -> None:
        barrier.wait()
        try:
            wins.append(pending.take("ab" * 10))
        except BadCode as exc:
            losses.append(str(exc))

    threads = [threading.Thread(target=take) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1 and len(losses) == 15 and set(losses) == {"this code was already used"}
