"""The agent's identity: its node key and certificate, kept in its state dir.

Layout of `--state-dir` (default ~/.pinnace/agent/<node>):

    node.key   the node's private key (ECDSA P-256, 0600); made once, kept across
               renewals, so the master's binding of the name to it holds
    node.crt   the node certificate (CN = node name, signed by the cluster CA)
    ca.crt     the cluster CA, pinned at join by the token's CA hash

Also the anonymous bootstrap identity a not-yet-joined agent presents (see the
master's master/pki/anonymous.py: the master requires a client certificate on
every connection; this one is minted from a public constant and proves nothing).
The constants come from the shared kernel (kernel/bootstrap.py); a unit test
checks that the master accepts what this module mints.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kernel.bootstrap import ANONYMOUS_CA_CN, ANONYMOUS_CN, anonymous_secret
from kernel.files import write_atomic

KEY_FILE, CERT_FILE, CA_FILE = "node.key", "node.crt", "ca.crt"


def default_state_dir(node: str) -> Path:
    return Path.home() / ".pinnace" / "agent" / node


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def spki_hash(public_key: object) -> str:
    """Unpadded base64url SHA-256 of a key's DER SubjectPublicKeyInfo (the token's CA hash)."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ValueError("the cluster CA's key is not an elliptic-curve key")
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def anonymous_identity(now: dt.datetime) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) of a throwaway anonymous client certificate."""
    key = ec.derive_private_key(anonymous_secret(), ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ANONYMOUS_CN)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ANONYMOUS_CA_CN)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


def new_key_pem() -> bytes:
    return key_pem(ec.generate_private_key(ec.SECP256R1()))


def csr_pem(node_key_pem: bytes, node: str) -> bytes:
    key = serialization.load_pem_private_key(node_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the node's key is not an elliptic-curve private key")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, slots=True)
class NodeCredentials:
    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def node(self) -> str:
        values = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        value = values[0].value if values else ""
        return value if isinstance(value, str) else value.decode(errors="replace")

    @property
    def ca_hash(self) -> str:
        return spki_hash(x509.load_pem_x509_certificate(self.ca_pem).public_key())

    def not_after(self) -> float:
        return self.cert.not_valid_after_utc.timestamp()

    def renew_at(self) -> float:
        """When to renew: at two thirds of the certificate's lifetime."""
        cert = self.cert
        start = cert.not_valid_before_utc.timestamp()
        return start + (cert.not_valid_after_utc.timestamp() - start) * 2 / 3


def load(state_dir: Path) -> NodeCredentials | None:
    """The stored credentials, or None when there are none (or they are unreadable)."""
    try:
        creds = NodeCredentials(
            (state_dir / KEY_FILE).read_bytes(),
            (state_dir / CERT_FILE).read_bytes(),
            (state_dir / CA_FILE).read_bytes(),
        )
        _ = creds.cert, creds.ca_hash
    except (OSError, ValueError):
        return None
    return creds


def save(state_dir: Path, creds: NodeCredentials) -> None:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, data, mode in (
        (KEY_FILE, creds.key_pem, 0o600),
        (CA_FILE, creds.ca_pem, 0o644),
        (CERT_FILE, creds.cert_pem, 0o644),
    ):
        write_atomic(state_dir / name, data, mode)
