"""TLS certificates for the ingress HTTPS frontend, checked before HAProxy ever sees them (pure).

An Ingress's `spec.tls[].secretName` names a Secret with `tls.crt` (a PEM certificate,
optionally followed by its chain) and `tls.key` (its unencrypted PEM private key), as
`kubectl create secret tls` makes it. HAProxy refuses a whole configuration whose
certificate does not load, which would stop every Service and Ingress from being
programmed; so each Secret is parsed here with `cryptography` first, and one that is
malformed, encrypted or whose key does not belong to its certificate is reported on
the Ingress naming it and left out. Messages name keys and Secrets, never values.

Flow: Secret (base64 values, plain in the master's memory) -> `certificate_pem` -> the
bytes the driver writes to DATA_DIR/lb/certs/<file> with mode 0600, and their digest.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from master.model import Secret

CERT_KEY = "tls.crt"
KEY_KEY = "tls.key"


class CertificateError(ValueError):
    """A Secret cannot serve as a certificate; the message is one clause, no values."""


def _value(secret: Secret, key: str) -> bytes:
    raw = secret.data.get(key)
    if raw is None:
        raise CertificateError(f'has no key "{key}" (make it with kubectl create secret tls)')
    try:
        return base64.b64decode(raw.encode(), validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError(f'"{key}" is not base64') from None


def _public(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def certificate_pem(secret: Secret) -> bytes:
    """The certificate chain and key of `secret` as one PEM file HAProxy loads."""
    cert_pem = _value(secret, CERT_KEY)
    key_pem = _value(secret, KEY_KEY)
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise CertificateError(f'"{CERT_KEY}" is not a PEM certificate') from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CertificateError(f'"{KEY_KEY}" is encrypted; HAProxy needs it unencrypted') from None
    except (ValueError, x509.UnsupportedGeneralNameType):
        raise CertificateError(f'"{KEY_KEY}" is not a PEM private key') from None
    if _public(chain[0].public_key()) != _public(key.public_key()):
        raise CertificateError(f'"{KEY_KEY}" is not the key of the certificate in "{CERT_KEY}"')
    return cert_pem.rstrip(b"\n") + b"\n" + key_pem.rstrip(b"\n") + b"\n"


def digest(pem: bytes) -> str:
    """Identifies a certificate file's content (stored in state.json instead of the content)."""
    return hashlib.sha256(pem).hexdigest()[:16]


# The default certificate's only name: .invalid never resolves, so it names no tenant.
DEFAULT_CERT_NAME = "ingress.pinnace.invalid"


def default_certificate_pem() -> bytes:
    """A fresh self-signed certificate and key (one PEM) for HTTPS clients that name no host
    or one no Ingress has a certificate for, as ingress-nginx's "fake certificate": they
    must not be shown a tenant's certificate, which would tell them its host names."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DEFAULT_CERT_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DEFAULT_CERT_NAME)]), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM) + key_pem
