"""Joining the cluster and staying joined: CA pinning, the join RPC, certificate rotation.

Start-up (`prepare`), in order:
  1. `--insecure`: plaintext to a loopback master, nothing else;
  2. credentials in the state dir for this node name (and, if a token is given,
     for the token's cluster) that have not expired: reuse them, no token needed;
  3. a token: join. Fetch the master's certificate chain over TLS *without*
     trusting it (the agent presents the anonymous bootstrap certificate), pick
     the CA whose SubjectPublicKeyInfo hash equals the token's CA hash (none:
     refuse, possible man-in-the-middle), then — over TLS verified against that
     CA — send JoinNode(token, name, CSR) and store key, certificate and CA;
  4. otherwise: refuse with one sentence saying how to get a token.

Then the session talks mTLS with the node certificate (`channel()` builds each
new connection from the current credentials), and `run()` renews the
certificate over mTLS at two thirds of its lifetime, keeping the key (the master
binds the node name to it). A master that is not up yet is waited for; a master
that refuses (bad token, name taken) ends the agent with the master's sentence.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import random
import socket
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent import credentials as cr
from agent.credentials import NodeCredentials
from agent.join_retry import RETRY_FIRST, join_wait, retry_after
from kernel.addresses import is_ip
from kernel.limits import AGENT_CHANNEL_OPTIONS
from kernel.names import JOIN_TOKEN
from protos import security_pb2, security_pb2_grpc

log = logging.getLogger("pinnace.agent")

JOIN_TIMEOUT = 15.0
# Renewal retries: often enough to make it well before expiry, rarely enough to be quiet.
RENEW_RETRY_MIN, RENEW_RETRY_MAX = 1.0, 300.0
# Grpc codes that mean "the master is not there (yet)", or busy, worth waiting for.
_TRANSIENT = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)
# Answers that say the master is there: the attempt's channel is kept for the next one.
_KEEP_CHANNEL = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)


class JoinError(Exception):
    """The agent cannot join or authenticate; the message is one sentence."""


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    secret: str
    ca_hash: str


def parse_token(text: str) -> Token:
    match = JOIN_TOKEN.fullmatch(text.strip())
    if match is None:
        raise JoinError(
            "--token: malformed: expected pinnace1.<id>.<secret>.<ca-hash> as "
            "`pinnace token create` prints it"
        )
    return Token(*match.groups())


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _split(master: str) -> tuple[str, int]:
    host, _, port = master.rpartition(":")
    return host.strip("[]"), int(port)


# -- step 1 of a join: the CA, pinned by the token's hash -----------------------------------


def fetch_pinned_ca(master: str, ca_hash: str, timeout: float = 10.0) -> bytes:
    """The cluster CA (PEM) from the master's TLS chain, if it matches `ca_hash`."""
    host, port = _split(master)
    key_pem, cert_pem = cr.anonymous_identity(_utcnow())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # trust nothing yet: the hash decides
    context.set_alpn_protocols(["h2"])
    with tempfile.TemporaryDirectory(prefix="pinnace-join-") as tmp:
        (Path(tmp) / "k").write_bytes(key_pem)
        (Path(tmp) / "c").write_bytes(cert_pem)
        context.load_cert_chain(str(Path(tmp) / "c"), str(Path(tmp) / "k"))
    sni = None if is_ip(host) else host
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der_chain = _unverified_chain(tls)
    chain = [x509.load_der_x509_certificate(der) for der in der_chain]
    if not chain:
        raise JoinError(f"the master at {master} presented no certificate")
    for cert in chain:
        if cr.spki_hash(cert.public_key()) == ca_hash:
            _check_names(chain[0], host, master)
            return cert.public_bytes(serialization.Encoding.PEM)
    found = cr.spki_hash(chain[-1].public_key())
    raise JoinError(
        f"the master at {master} presented a CA with hash {found}, but the join token "
        f"expects {ca_hash}: refusing to join (a man-in-the-middle, or a token from another "
        f"cluster)"
    )


def _unverified_chain(tls: ssl.SSLSocket) -> list[bytes]:
    """The peer's certificate chain as sent (DER), before any verification."""
    public = getattr(tls, "get_unverified_chain", None)  # Python >= 3.13: DER bytes
    if public is not None:
        return [bytes(c) for c in public() or []]
    # Python 3.10-3.12 have it only on the private SSL object, as certificate objects.
    import _ssl

    private = tls._sslobj.get_unverified_chain()  # type: ignore[attr-defined]
    return [c.public_bytes(_ssl.ENCODING_DER) for c in private or []]


def _check_names(leaf: x509.Certificate, host: str, master: str) -> None:
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return
    names = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    names |= set(sans.get_values_for_type(x509.DNSName))
    wanted = str(ipaddress.ip_address(host)) if is_ip(host) else host
    if wanted not in names:
        raise JoinError(
            f"the master's certificate does not name {host} (it names "
            f"{', '.join(sorted(names))}): start the master with --tls-san {host}, or "
            f"give --master one of those names"
        )


# -- RPCs -------------------------------------------------------------------------------------


def _describe(e: grpc.aio.AioRpcError) -> str:
    return str(e.details() or e.code().name)


class JoinAttempts:
    """One node's attempts to join: what an attempt costs both sides is paid once, not per try.

    The pinned CA is fetched once per master, and the anonymous TLS channel is kept across
    attempts the master answered (busy, or a deadline that passed). Made afresh per
    attempt, each retry cost the master two TLS handshakes (the chain fetch, the channel)
    before it could even say "busy", and the agent a certificate signed for the
    anonymous identity and a CSR; on an overloaded machine a deadline that passed
    during the channel's handshake threw the handshake away, and the next attempt
    started it over: joins whose handshakes took longer than the deadline never got in.
    A kept channel's connection goes on across attempts. A channel that could not reach
    its master (UNAVAILABLE, a socket error) is dropped: gRPC's own reconnect backoff
    (up to two minutes) must not delay a join to a master that has just come up.
    """

    def __init__(self, token: Token, node: str, key_pem: bytes) -> None:
        self._token = token
        self.node = node
        self._key_pem = key_pem
        self._csr_pem = b""
        self._cas: dict[str, bytes] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def attempt(self, master: str) -> NodeCredentials:
        """One JoinNode to `master`. Raises JoinError (a refusal: final), or what the
        transport raised (grpc.aio.AioRpcError, OSError: worth trying again)."""
        try:
            return await self._attempt(master)
        except grpc.aio.AioRpcError as e:
            if e.code() not in _KEEP_CHANNEL:
                await self._drop(master)
            raise
        except OSError:
            await self._drop(master)
            raise

    async def _attempt(self, master: str) -> NodeCredentials:
        ca_pem = self._cas.get(master)
        if ca_pem is None:
            ca_pem = await asyncio.to_thread(fetch_pinned_ca, master, self._token.ca_hash)
            self._cas[master] = ca_pem
        channel = self._channels.get(master)
        if channel is None:
            anon_key, anon_cert = cr.anonymous_identity(_utcnow())
            creds = grpc.ssl_channel_credentials(ca_pem, anon_key, anon_cert)
            channel = self._channels[master] = grpc.aio.secure_channel(master, creds)
        if not self._csr_pem:
            self._csr_pem = cr.csr_pem(self._key_pem, self.node)
        stub = security_pb2_grpc.JoinServiceStub(channel)
        try:
            reply = await stub.JoinNode(
                security_pb2.JoinNodeRequest(
                    token=f"{self._token.id}.{self._token.secret}",
                    node_name=self.node,
                    csr_pem=self._csr_pem,
                ),
                timeout=JOIN_TIMEOUT,
            )
        except grpc.aio.AioRpcError as e:
            if e.code() in _TRANSIENT:
                raise
            raise JoinError(
                f"the master refused to join node {self.node}: {_describe(e)}"
            ) from None
        return NodeCredentials(self._key_pem, reply.certificate_pem, ca_pem)

    async def _drop(self, master: str) -> None:
        self._cas.pop(master, None)
        channel = self._channels.pop(master, None)
        if channel is not None:
            await channel.close(grace=None)

    async def close(self) -> None:
        for master in list(self._channels):
            await self._drop(master)


async def join(master: str, token: Token, node: str, key_pem: bytes) -> NodeCredentials:
    """One attempt to join, on its own channel."""
    attempts = JoinAttempts(token, node, key_pem)
    try:
        return await attempts.attempt(master)
    finally:
        await attempts.close()


def mtls_channel(master: str, creds: NodeCredentials) -> grpc.aio.Channel:
    tls = grpc.ssl_channel_credentials(creds.ca_pem, creds.key_pem, creds.cert_pem)
    return grpc.aio.secure_channel(master, tls, options=AGENT_CHANNEL_OPTIONS)


async def renew(master: str, creds: NodeCredentials, node: str) -> NodeCredentials:
    async with mtls_channel(master, creds) as channel:
        stub = security_pb2_grpc.JoinServiceStub(channel)
        reply = await stub.RenewNodeCertificate(
            security_pb2.RenewNodeCertificateRequest(csr_pem=cr.csr_pem(creds.key_pem, node)),
            timeout=JOIN_TIMEOUT,
        )
    return NodeCredentials(creds.key_pem, reply.certificate_pem, reply.ca_pem or creds.ca_pem)


# -- the agent's security, start to finish ------------------------------------------------------


class AgentSecurity:
    """Current credentials, the channel factory for the session, and rotation."""

    def __init__(
        self,
        master: str,
        node: str,
        state_dir: Path | None,
        creds: NodeCredentials | None,
        token: Token | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # `a:7400,b:7400,c:7400`: several masters of one cluster (they share its CA).
        self.masters = [m.strip() for m in master.split(",") if m.strip()] or [master]
        self._turn = 0
        self.node = node
        self.state_dir = state_dir
        self.creds = creds
        self._token = token
        self._clock = clock
        self.renewals = 0

    @property
    def master(self) -> str:
        """The master the current (or last) session went to."""
        return self.masters[(self._turn - 1) % len(self.masters)] if self._turn else self.masters[0]

    @property
    def insecure(self) -> bool:
        return self.creds is None

    def prefer(self, master: str) -> None:
        """The next session goes to `master` (a follower named it as the leader)."""
        if master in self.masters:
            self._turn = self.masters.index(master)

    def next_target(self) -> str:
        """The master the next session goes to (and from then on `master`)."""
        target = self.masters[self._turn % len(self.masters)]
        self._turn += 1
        return target

    def channel(self) -> grpc.aio.Channel:
        """A channel for the next session: each new session goes to the next master, so one
        that is gone or refuses (a follower) is passed over on the following attempt."""
        target = self.next_target()
        if self.creds is None:
            return grpc.aio.insecure_channel(target, options=AGENT_CHANNEL_OPTIONS)
        return mtls_channel(target, self.creds)

    async def run(self) -> None:
        """Renew the certificate at 2/3 of its lifetime, forever (nothing to do if insecure)."""
        creds, state_dir = self.creds, self.state_dir
        if creds is None or state_dir is None:
            await asyncio.Event().wait()
            return
        retry = RENEW_RETRY_MIN
        while True:
            await asyncio.sleep(max(0.0, creds.renew_at() - self._clock()))
            try:
                renewed = await renew(self.master, creds, self.node)
            except grpc.aio.AioRpcError as e:
                left = creds.not_after() - self._clock()
                if left <= 0 and self._token is not None:
                    log.warning("node certificate expired; joining again with the token")
                    try:
                        renewed = await join(self.master, self._token, self.node, creds.key_pem)
                    except (JoinError, grpc.aio.AioRpcError, OSError) as err:
                        log.warning("rejoin failed: %s", err)
                        await asyncio.sleep(retry)
                        retry = min(RENEW_RETRY_MAX, retry * 2)
                        continue
                else:
                    log.warning(
                        "renewing the node certificate failed (%s); %s; retrying in %gs",
                        _describe(e),
                        f"it expires in {left:.0f}s" if left > 0 else "it has EXPIRED",
                        retry,
                    )
                    await asyncio.sleep(min(retry, max(left / 4, RENEW_RETRY_MIN)))
                    retry = min(RENEW_RETRY_MAX, retry * 2)
                    continue
            retry = RENEW_RETRY_MIN
            cr.save(state_dir, renewed)
            self.creds = creds = renewed
            self.renewals += 1
            log.info(
                "renewed the node certificate (serial %x, valid until %s)",
                renewed.cert.serial_number,
                renewed.cert.not_valid_after_utc.isoformat(timespec="seconds"),
            )


def check_insecure_master(master: str) -> None:
    for one in master.split(","):
        _check_insecure_one(one.strip())


def _check_insecure_one(master: str) -> None:
    host, _ = _split(master)
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if not loopback:
        raise JoinError(
            f"--insecure talks plaintext and is only allowed to a master on this machine "
            f"(loopback), not {master}"
        )


async def prepare(
    master: str,
    node: str,
    token_text: str,
    state_dir: Path,
    insecure: bool,
) -> AgentSecurity:
    """Credentials to run with: reused, freshly joined, or none (--insecure)."""
    if insecure:
        check_insecure_master(master)
        return AgentSecurity(master, node, None, None)
    token = parse_token(token_text) if token_text else None
    stored = cr.load(state_dir)
    now = time.time()
    same_cluster = stored is not None and (token is None or token.ca_hash == stored.ca_hash)
    if stored is not None and stored.node == node and stored.not_after() > now and same_cluster:
        log.info(
            "using the node certificate in %s (valid until %s)",
            state_dir,
            stored.cert.not_valid_after_utc.isoformat(timespec="seconds"),
        )
        return AgentSecurity(master, node, state_dir, stored, token)
    if token is None:
        if stored is not None and stored.node == node:
            raise JoinError(
                f"the certificate of node {node} in {state_dir} has expired: start the agent "
                f"with --token TOKEN to join again (`pinnace token create` on the master)"
            )
        raise JoinError(
            f"no credentials for node {node} in {state_dir}: start the agent with --token TOKEN "
            f"(create one on the master with `pinnace token create`)"
        )
    key_pem = stored.key_pem if stored is not None and stored.node == node else cr.new_key_pem()
    creds = await join_when_reachable(master, token, node, key_pem)
    cr.save(state_dir, creds)
    log.info("joined the cluster at %s as node %s; credentials in %s", master, node, state_dir)
    return AgentSecurity(master, node, state_dir, creds, token)


async def join_when_reachable(
    master: str,
    token: Token,
    node: str,
    key_pem: bytes,
    jitter: Callable[[], float] = random.random,
    on_retry: Callable[[BaseException], None] = lambda e: None,
) -> NodeCredentials:
    """Join, retrying a master that is not up yet or busy (agent/join_retry.py);
    `on_retry` hears of every attempt that will be tried again (the hollow bench counts
    them)."""
    delay, failures, busy_told = RETRY_FIRST, 0, False
    masters = [m.strip() for m in master.split(",") if m.strip()] or [master]
    attempts = JoinAttempts(token, node, key_pem)
    try:
        while True:
            try:
                return await attempts.attempt(masters[failures % len(masters)])
            except (OSError, grpc.aio.AioRpcError) as e:
                on_retry(e)
                rpc = e if isinstance(e, grpc.aio.AioRpcError) else None
                busy = rpc is not None and rpc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                hint = retry_after(rpc.trailing_metadata()) if rpc is not None else 0.0
                wait = join_wait(busy, hint, delay, jitter())
                delay = wait.delay
                reason = _describe(rpc) if rpc is not None else str(e)
                if wait.failure:
                    failures += 1
                    if failures == 1:
                        log.warning(
                            "cannot reach the master at %s to join (%s); retrying", master, reason
                        )
                elif not busy_told:
                    busy_told = True
                    log.info("cannot join yet: %s", reason)
                await asyncio.sleep(wait.seconds)
    finally:
        await attempts.close()
