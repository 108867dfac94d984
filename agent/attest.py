"""Signed witness answers: a peer's "I do (not) hear the master" that cannot be forged.

An agent about to fence asks its peers whether they hear the master
(agent/witness.py). A forged "I hear nothing either" would keep a cut-off node
running pods the master is replacing, so every answer is signed: the view
(the asker's random nonce, the answering node's name and what it sees) is
serialized once, signed with the node's own key (the one its node certificate,
issued by the cluster CA, binds to its name), and sent with that certificate.
The asker accepts it only if the certificate chains to its cluster CA, is valid
now, names the peer it asked, and the signature over the exact bytes holds and
the nonce is its own. In --insecure mode (no certificates anywhere) answers are
unsigned and taken as they come, like everything else on such a cluster.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.credentials import NodeCredentials
from protos import node_pb2 as pb


class AttestError(Exception):
    """The answer cannot be trusted; the message says why, for the log."""


def sign_view(view: pb.WitnessView, creds: NodeCredentials | None) -> pb.CheckMasterResponse:
    data = view.SerializeToString()
    if creds is None:
        return pb.CheckMasterResponse(view=data)
    key = serialization.load_pem_private_key(creds.key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise AttestError("the node key is not an EC key")
    signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    return pb.CheckMasterResponse(view=data, signature=signature, certificate=creds.cert_pem)


def verify_answer(
    answer: pb.CheckMasterResponse,
    nonce: bytes,
    peer: str,
    ca_pem: bytes | None,
    now: dt.datetime,
) -> pb.WitnessView:
    """The view in `answer` if it is the signed, fresh word of node `peer`; else AttestError."""
    view = pb.WitnessView()
    try:
        view.ParseFromString(answer.view)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise AttestError(f"unreadable view: {exc}") from None
    if view.nonce != nonce:
        raise AttestError("the answer does not carry our nonce")
    if view.node_name != peer:
        raise AttestError(f"the answer speaks for {view.node_name!r}, not {peer!r}")
    if ca_pem is None:
        return view
    if not answer.signature or not answer.certificate:
        raise AttestError("the answer is not signed")
    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert = x509.load_pem_x509_certificate(answer.certificate)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise AttestError(f"the certificate is not from the cluster CA: {exc}") from None
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise AttestError("the certificate is not valid now")
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [peer]:
        raise AttestError(f"the certificate is for {names}, not {peer!r}")
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise AttestError("the certificate's key is not an EC key")
    try:
        public.verify(answer.signature, answer.view, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AttestError("the signature does not match") from None
    return view
