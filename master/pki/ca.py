"""The cluster CA and the certificates it issues (ECDSA P-256, via `cryptography`).

One CA per cluster, created by the master on first start (master/pki/bootstrap.py)
and kept in `<data-dir>/pki/`. It signs three kinds of leaf certificate, told apart
by their subject's organisation (O), which the master's authorisation layer
(master/api/auth.py) reads back:

- the master's server certificate (serverAuth; SANs = the addresses it answers on);
- admin client certificates (O=pinnace:admins), for the CLI's pinnace.conf;
- node client certificates (O=pinnace:nodes, CN=node name), issued from an
  agent's CSR at join and at each renewal.

Everything here is pure computation over keys and certificates: no files, no
clock (callers pass `now`), so unit tests can issue and check certificates
freely.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ADMIN_ORG = "pinnace:admins"
NODE_ORG = "pinnace:nodes"
ADMIN_CN = "pinnace-admin"
MASTER_CN = "pinnace-master"
CA_LIFETIME = dt.timedelta(days=3650)
SERVER_LIFETIME = dt.timedelta(days=365)
ADMIN_LIFETIME = dt.timedelta(days=365)
# Certificates start a little in the past: clocks of different machines disagree.
BACKDATE = dt.timedelta(minutes=5)
# The largest CSR the master parses (a P-256 CSR is about 400 bytes).
MAX_CSR_BYTES = 4096

PrivateKey = ec.EllipticCurvePrivateKey


class CsrError(ValueError):
    """A certificate signing request the CA will not sign; the message says why."""


def new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an ECDSA private key")
    return key


def spki_sha256(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo (what kubeadm's CA hash pins)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()


def ca_hash(ca_cert: x509.Certificate) -> str:
    """The CA pin carried by join tokens: unpadded base64url of spki_sha256."""
    public_key = ca_cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ValueError(f"the cluster CA's key is not an EC key: {type(public_key).__name__}")
    return base64.urlsafe_b64encode(spki_sha256(public_key)).rstrip(b"=").decode()


def _name(cn: str, org: str = "") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: PrivateKey

    @classmethod
    def create(cls, now: dt.datetime, common_name: str = "pinnace-ca") -> CertificateAuthority:
        key = new_key()
        name = _name(common_name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @property
    def pem(self) -> bytes:
        return cert_pem(self.cert)

    def issued(self, cert: x509.Certificate) -> bool:
        """Whether this CA signed `cert` (validity dates are the TLS layer's business)."""
        if cert.issuer != self.cert.subject:
            return False
        try:
            cert.verify_directly_issued_by(self.cert)
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True

    def _leaf(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        now: dt.datetime,
        lifetime: dt.timedelta,
        usage: x509.ObjectIdentifier,
    ) -> x509.CertificateBuilder:
        # Never valid past the CA itself; backdated by at most a tenth of the lifetime,
        # so an agent renewing at 2/3 of (not_after - not_before) renews on time.
        not_after = min(now + lifetime, self.cert.not_valid_after_utc)
        backdate = min(BACKDATE, lifetime / 10)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - backdate)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )

    def issue_server(
        self,
        key: PrivateKey,
        sans: list[str],
        now: dt.datetime,
        lifetime: dt.timedelta = SERVER_LIFETIME,
    ) -> x509.Certificate:
        """The master's serving certificate: every name in `sans` (DNS names or IPs)."""
        names: list[x509.GeneralName] = []
        for san in dict.fromkeys(sans):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
        builder = self._leaf(
            _name(MASTER_CN), key.public_key(), now, lifetime, ExtendedKeyUsageOID.SERVER_AUTH
        ).add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue_client(
        self,
        public_key: ec.EllipticCurvePublicKey,
        common_name: str,
        org: str,
        now: dt.datetime,
        lifetime: dt.timedelta,
    ) -> x509.Certificate:
        builder = self._leaf(
            _name(common_name, org), public_key, now, lifetime, ExtendedKeyUsageOID.CLIENT_AUTH
        )
        return builder.sign(self.key, hashes.SHA256())

    def sign_node_csr(
        self, csr_pem: bytes, node_name: str, now: dt.datetime, lifetime: dt.timedelta
    ) -> x509.Certificate:
        """A node certificate for `node_name` from the agent's CSR, after checking the CSR."""
        csr = parse_csr(csr_pem)
        subject_cn = common_name(csr.subject)
        if subject_cn != node_name:
            raise CsrError(
                f"the certificate request is for {subject_cn!r}, not for node {node_name!r}"
            )
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):  # parse_csr checks it too
            raise CsrError("the certificate request's key must be an EC (P-256) key")
        return self.issue_client(public_key, node_name, NODE_ORG, now, lifetime)


def parse_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    """A CSR we are willing to sign: bounded size, valid self-signature, a P-256 key."""
    if not csr_pem:
        raise CsrError("the certificate request is missing")
    if len(csr_pem) > MAX_CSR_BYTES:
        raise CsrError(f"the certificate request is larger than {MAX_CSR_BYTES} bytes")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise CsrError("the certificate request is not a PEM CSR") from None
    if not csr.is_signature_valid:
        raise CsrError("the certificate request's signature does not verify")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise CsrError("the certificate request must carry an ECDSA P-256 key")
    return csr


def common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = values[0].value if values else ""
    return value if isinstance(value, str) else value.decode(errors="replace")


def organization(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    value = values[0].value if values else ""
    return value if isinstance(value, str) else value.decode(errors="replace")


def utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)
