"""The well-known anonymous bootstrap identity: how a client with no certificate yet gets in.

gRPC Python's server credentials either require a client certificate or never
ask for one; there is no "request, verify if given". pinnace wants both on one
port: admins and nodes authenticate with certificates from the cluster CA, and
a joining agent, which has none yet, must still reach the join RPC over TLS.

So the master requires a client certificate and trusts two roots: the cluster CA
and this anonymous CA, whose private key is derived from a public constant —
anyone can mint a certificate under it, so such a certificate proves nothing.
The authorisation layer (master/api/auth.py) treats every certificate not signed
by the cluster CA as anonymous, which may call only JoinService.JoinNode (and
that only with a valid join token). The agent mints its anonymous certificate
from the same constant (kernel/bootstrap.py, agent/credentials.py); a unit test
checks the two agree.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kernel.bootstrap import ANONYMOUS_CA_CN, anonymous_secret
from master.pki.ca import cert_pem


def anonymous_key() -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(anonymous_secret(), ec.SECP256R1())


def anonymous_ca_pem() -> bytes:
    """The anonymous CA certificate the master adds to its client trust roots."""
    key = anonymous_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ANONYMOUS_CA_CN)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2199, 12, 31, tzinfo=dt.UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert_pem(cert)
