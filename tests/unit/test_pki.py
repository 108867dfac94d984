"""The cluster CA and the certificates it issues; peers as the authorisation layer sees them."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent import credentials as agent_credentials
from master.api.auth import peer_from_certificate, rule_for
from master.pki.anonymous import anonymous_ca_pem
from master.pki.ca import (
    ADMIN_ORG,
    MAX_CSR_BYTES,
    NODE_ORG,
    CertificateAuthority,
    CsrError,
    ca_hash,
    cert_pem,
    common_name,
    new_key,
    organization,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(NOW)


def _csr(cn: str, key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    return agent_credentials.csr_pem(agent_credentials.key_pem(key or new_key()), cn)


def test_a_node_csr_becomes_a_node_certificate_for_that_name(ca: CertificateAuthority) -> None:
    cert = ca.sign_node_csr(_csr("web-1"), "web-1", NOW, dt.timedelta(days=90))

    assert common_name(cert.subject) == "web-1"
    assert organization(cert.subject) == NODE_ORG
    assert ca.issued(cert)
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=90)


def test_a_csr_for_another_name_is_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(CsrError, match="is for 'web-2', not for node 'web-1'"):
        ca.sign_node_csr(_csr("web-2"), "web-1", NOW, dt.timedelta(days=1))


@pytest.mark.parametrize(
    ("csr", "reason"),
    [
        (b"", "missing"),
        (b"x" * (MAX_CSR_BYTES + 1), "larger than"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "PEM"),
        (b"\x00\xff binary junk", "not a PEM CSR"),
    ],
)
def test_malformed_csrs_are_refused_with_a_reason(
    ca: CertificateAuthority, csr: bytes, reason: str
) -> None:
    with pytest.raises(CsrError, match=reason):
        ca.sign_node_csr(csr, "web-1", NOW, dt.timedelta(days=1))


def test_a_csr_with_another_curve_is_refused(ca: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "web-1")]))
        .sign(key, hashes.SHA256())
    )
    pem = csr.public_bytes(serialization.Encoding.PEM)

    with pytest.raises(CsrError, match="P-256"):
        ca.sign_node_csr(pem, "web-1", NOW, dt.timedelta(days=1))


def test_short_lived_certificates_are_barely_backdated(ca: CertificateAuthority) -> None:
    cert = ca.sign_node_csr(_csr("n"), "n", NOW, dt.timedelta(seconds=9))
    creds = agent_credentials.NodeCredentials(b"", cert_pem(cert), ca.pem)

    # renewal at 2/3 of the lifetime lands ~6 s after issue, not minutes later
    assert creds.renew_at() - NOW.timestamp() == pytest.approx(5.7, abs=0.1)


def test_the_server_certificate_names_every_address(ca: CertificateAuthority) -> None:
    cert = ca.issue_server(new_key(), ["127.0.0.1", "localhost", "master", "10.0.0.5"], NOW)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost", "master"}
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "10.0.0.5",
    }


def test_the_token_ca_hash_is_the_same_on_both_sides(ca: CertificateAuthority) -> None:
    assert agent_credentials.spki_hash(ca.cert.public_key()) == ca_hash(ca.cert)
    assert len(ca_hash(ca.cert)) == 43


def test_the_agents_anonymous_certificate_chains_to_the_masters_anonymous_ca() -> None:
    _, leaf_pem = agent_credentials.anonymous_identity(dt.datetime.now(dt.UTC))
    leaf = x509.load_pem_x509_certificate(leaf_pem)
    anonymous_ca = x509.load_pem_x509_certificate(anonymous_ca_pem())

    leaf.verify_directly_issued_by(anonymous_ca)  # raises if they disagree


def test_peers_are_told_apart_by_issuer_and_organisation(ca: CertificateAuthority) -> None:
    admin = ca.issue_client(
        new_key().public_key(), "pinnace-admin", ADMIN_ORG, NOW, dt.timedelta(1)
    )
    node = ca.sign_node_csr(_csr("web-1"), "web-1", NOW, dt.timedelta(days=1))
    _, anonymous = agent_credentials.anonymous_identity(NOW)

    assert peer_from_certificate(cert_pem(admin), ca).role == "admin"
    assert peer_from_certificate(cert_pem(node), ca).role == "node"
    assert peer_from_certificate(cert_pem(node), ca).name == "web-1"
    assert peer_from_certificate(anonymous, ca).role == "anonymous"
    assert peer_from_certificate(b"junk", ca).role == "anonymous"


def test_an_admin_certificate_from_another_ca_is_anonymous(ca: CertificateAuthority) -> None:
    forger = CertificateAuthority.create(NOW, common_name="pinnace-ca")  # same name, other key
    forged = forger.issue_client(
        new_key().public_key(), "pinnace-admin", ADMIN_ORG, NOW, dt.timedelta(days=1)
    )

    assert peer_from_certificate(cert_pem(forged), ca).role == "anonymous"


@pytest.mark.parametrize(
    ("method", "rule"),
    [
        ("/pinnace.v1.ClusterService/ApplyManifests", "admin"),
        ("/pinnace.v1.TokenService/CreateToken", "admin"),
        ("/pinnace.v1.NodeService/RegisterNode", "register"),
        ("/pinnace.v1.NodeService/StreamSession", "session"),
        ("/pinnace.v1.NodeService/Unknown", "nobody"),
        ("/pinnace.v1.JoinService/JoinNode", "anyone"),
        ("/pinnace.v1.JoinService/RenewNodeCertificate", "node"),
        ("/grpc.health.v1.Health/Check", "nobody"),
    ],
)
def test_every_method_has_a_rule_and_unknown_ones_are_closed(method: str, rule: str) -> None:
    assert rule_for(method) == rule
