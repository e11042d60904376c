"""The server's TLS certificates: a self-signed one made on first start in <data>/tls/, those an
administrator puts there (NAME.crt with NAME.key, or one PEM holding both), and the one the
settings name. Certificates are known by their SHA-256 fingerprint (what browsers show and
clients pin) and their SHA-1 thumbprint (what Windows tools show)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailkeep.core.errors import InvalidArgument, NotFound

DIR = "tls"
MAX_FILE = 1 << 20  # a certificate file is small; a larger one is not read


def _hex(digest: bytes) -> str:
    text = digest.hex().upper()
    return ":".join(text[i:i + 2] for i in range(0, len(text), 2))


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER, as colon-separated hex (what browsers show)."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return _hex(hashlib.sha256(der).digest())


def ensure_self_signed(data_dir: Path) -> tuple[Path, Path]:
    """<data>/tls/server.crt and server.key, made once (P-256, names of this host)."""
    tls = data_dir / DIR
    cert_path, key_path = tls / "server.crt", tls / "server.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    tls.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailkeep")])
    now = dt.datetime.now(dt.UTC)
    alt = x509.SubjectAlternativeName([
        x509.DNSName(host), x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1"))])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(alt, critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


@dataclass(frozen=True)
class Held:
    """A certificate the server can serve: its file, its private key's file (the same file
    for a PEM holding both) and what it says."""

    cert: Path
    key: Path
    fingerprint: str  # SHA-256
    thumbprint: str  # SHA-1
    subject: str
    names: tuple[str, ...]
    not_before: str
    not_after: str
    self_signed: bool

    def shown(self) -> dict[str, Any]:
        return {"thumbprint": self.thumbprint.replace(":", ""), "fingerprint": self.fingerprint,
                "subject": self.subject, "names": list(self.names),
                "notBefore": self.not_before, "notAfter": self.not_after,
                "selfSigned": self.self_signed, "path": str(self.cert)}


def _read(path: Path) -> bytes | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_FILE:
            return None
        return path.read_bytes()
    except OSError:
        return None


def load(cert: Path, key: Path) -> Held:
    """A certificate and its key, checked to belong together (InvalidArgument if not)."""
    pem = _read(cert)
    if pem is None or b"-----BEGIN CERTIFICATE-----" not in pem:
        raise InvalidArgument(f"{cert} is not a readable PEM certificate")
    if _read(key) is None:  # a regular file of a key's size (never a FIFO or a device)
        raise InvalidArgument(f"{key} is not a readable private key file")
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        parsed = x509.load_pem_x509_certificate(pem)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise InvalidArgument(f"{cert} and {key} are not a certificate and its private key "
                              f"({type(exc).__name__})") from None
    der = parsed.public_bytes(serialization.Encoding.DER)
    try:
        alt = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(str(n) for n in alt.get_values_for_type(x509.DNSName)) + tuple(
            str(n) for n in alt.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        names = ()
    return Held(cert, key, _hex(hashlib.sha256(der).digest()), _hex(hashlib.sha1(der).digest()),
                parsed.subject.rfc4514_string(), names,
                parsed.not_valid_before_utc.isoformat(), parsed.not_valid_after_utc.isoformat(),
                parsed.issuer == parsed.subject)


def held(data_dir: Path, configured: tuple[Path, Path] | None = None) -> list[Held]:
    """The certificates in <data>/tls/ with their keys (and the configured one), by path."""
    found: dict[Path, Held] = {}
    tls = data_dir / DIR
    pairs: list[tuple[Path, Path]] = []
    if tls.is_dir():
        for path in sorted(tls.iterdir()):
            if path.suffix == ".crt":
                pairs.append((path, path.with_suffix(".key")))
            elif path.suffix == ".pem":
                pairs.append((path, path))  # certificate and key in one file
    if configured is not None:
        pairs.append(configured)
    for cert, key in pairs:
        try:
            found.setdefault(cert.resolve(), load(cert, key))
        except InvalidArgument:
            continue  # a file without its key, or not a certificate: not one to serve
    return list(found.values())


_HEX = re.compile(r"[0-9A-Fa-f]+")


def find(certificates: list[Held], thumbprint: str) -> Held:
    """The certificate with this SHA-1 thumbprint or SHA-256 fingerprint (hex, with or
    without colons and spaces, any case)."""
    wanted = re.sub(r"[\s:]", "", thumbprint).upper()
    if not _HEX.fullmatch(wanted) or len(wanted) not in (40, 64):
        raise InvalidArgument("thumbprint must be a certificate's SHA-1 thumbprint (40 hex "
                              "digits) or SHA-256 fingerprint (64 hex digits)")
    for cert in certificates:
        if wanted in (cert.thumbprint.replace(":", ""), cert.fingerprint.replace(":", "")):
            return cert
    raise NotFound(f"the server holds no certificate with thumbprint {wanted} (put it and its "
                   "key in the data directory's tls/ folder: NAME.crt and NAME.key, or one "
                   "NAME.pem)")
