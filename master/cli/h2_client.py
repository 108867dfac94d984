"""`apply`'s call to the master without grpcio: credentials, retries, several masters.

master/cli/h2_unary.py makes one call on one connection; this module makes it the way
`MasterClient` (master/cli/client.py) makes every other verb's, so a user cannot tell the
two apart: TLS with the credentials master/cli/config.py finds (plaintext only with
--insecure, to loopback); a master that refuses connections (restarting) is tried again
until the connect wait is over (4 s, or 1 s each with several masters); with
`--master a,b,c` a master that cannot be reached, or that answers UNAVAILABLE or
DEADLINE_EXCEEDED (a follower), passes the call on to the next; every failure is the
sentence master/cli/failures.py gives for it.

The client certificate and key reach OpenSSL through a memory file (memfd): the ssl
module loads a certificate chain only from a file name, and the key must not be written
to disk. Where there is no memfd (not Linux), or where an HTTP proxy is configured
(grpcio goes through it, this client would not), `available()` is False and `apply` takes
grpcio's path.
"""

from __future__ import annotations

import os
import time

from master.cli import config, failures
from master.cli.bare_tls import SSLError, client_context
from master.cli.config import CredentialsError
from master.cli.errors import CliError
from master.cli.h2_unary import CallFailed, Unreached, call_once

# mypy reads any constant named TYPE_CHECKING as typing's (kernel/records.py says why).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import _ssl
    from collections.abc import Callable

CALL_TIMEOUT_SECONDS = 30.0
# Pauses between connection attempts to a master that refuses them (it may be starting).
RETRY_PAUSES = (0.05, 0.1, 0.2, 0.4)


# Environment variables through which grpcio reaches a master via an HTTP proxy (CONNECT),
# which this client does not do: with any of them set, grpcio sends the call.
PROXY_VARIABLES = ("grpc_proxy", "https_proxy", "http_proxy", "HTTPS_PROXY", "HTTP_PROXY")


def available() -> bool:
    """Whether this client can send the call as grpcio would: a memfd for the credentials,
    and no proxy configured for grpcio to go through."""
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return False
    return hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


def retry_pause(attempt: int) -> float:
    """Seconds before connection attempt `attempt` + 1 (0 is the first retry)."""
    return RETRY_PAUSES[min(attempt, len(RETRY_PAUSES) - 1)]


def tls_context(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> _ssl._SSLContext:
    """A client context that trusts only the cluster CA, checks the master's name, and
    shows our certificate; ALPN h2, as gRPC requires (master/cli/bare_tls.py)."""
    fd = os.memfd_create("pinnace-client-credentials", os.MFD_CLOEXEC)
    try:
        os.write(fd, cert_pem.rstrip(b"\n") + b"\n" + key_pem)
        return client_context(ca_pem, f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _tcp_reachable(address: str) -> bool:
    import socket  # only when there are no credentials to call with

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
            return True
    except (OSError, ValueError):
        return False


class H2Client:
    """The masters of `address` (comma-separated), called one after another as needed."""

    def __init__(
        self,
        address: str,
        *,
        call: Callable[..., bytes] = call_once,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._call, self._sleep, self._clock = call, sleep, clock
        try:
            self.addresses, self.credentials, self._connect_wait = config.masters(address)
        except CredentialsError as e:
            raise CliError(str(e)) from None
        self._tls: _ssl._SSLContext | None = None

    def _context(self, address: str) -> _ssl._SSLContext | None:
        if self.credentials.insecure:
            return None
        creds = self.credentials.config
        if creds is None:
            if _tcp_reachable(address):
                raise CliError(config.no_credentials(address))
            raise CliError(failures.unreachable_sentence(address, self.addresses, "", False))
        if self._tls is None:
            try:
                self._tls = tls_context(creds.ca_pem, creds.cert_pem, creds.key_pem)
            except (SSLError, ValueError) as e:
                raise CliError(
                    f"error: the credentials in {self.credentials.source} cannot be used: {e}"
                ) from None
        return self._tls

    def call(self, path: str, message: bytes, timeout: float = CALL_TIMEOUT_SECONDS) -> bytes:
        """The reply of the first master that takes the call; CliError otherwise."""
        for turn, address in enumerate(self.addresses):
            last = turn == len(self.addresses) - 1
            try:
                return self._call_one(address, path, message, timeout)
            except Unreached as e:
                if last:
                    raise CliError(
                        failures.unreachable_sentence(
                            address, self.addresses, self.credentials.source, e.tls
                        )
                    ) from None
            except CallFailed as e:
                sentence = failures.status_sentence(e.code, e.details, address)
                if last or not failures.passes_on(e.code):
                    if sentence is None:
                        sentence = failures.unreachable_sentence(
                            address, self.addresses, self.credentials.source, False
                        )
                    raise CliError(sentence) from None
        raise AssertionError("unreachable")

    def _call_one(self, address: str, path: str, message: bytes, timeout: float) -> bytes:
        """One master: its connection refused is tried again until the connect wait ends;
        TLS that fails is not (a wrong certificate stays wrong)."""
        tls = self._context(address)
        give_up = self._clock() + self._connect_wait
        attempt = 0
        while True:
            try:
                return self._call(address, path, message, tls, timeout, self._connect_wait)
            except Unreached as e:
                pause = retry_pause(attempt)
                if e.tls or self._clock() + pause > give_up:
                    raise
                self._sleep(pause)
                attempt += 1
