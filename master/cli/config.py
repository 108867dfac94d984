"""Which credentials the CLI uses to talk to the master, and where it finds them.

Lookup, first match wins:
  1. `--config FILE`;
  2. `$PINNACE_CONFIG`;
  3. `~/.pinnace/pinnace.conf` (copy the master's file there on a workstation);
  4. when the master address is on this machine (loopback), the file the master
     writes in its default data dir: `$PINNACE_DATA_DIR/pinnace.conf`, else
     `~/.pinnace/master/pinnace.conf` — so on the master's own machine the CLI
     needs no setup at all.
A file named by 1 or 2 must exist and parse; 3 and 4 are used only if present.

The master address: `--master`, else `$PINNACE_MASTER`, else the config's
`server`, else 127.0.0.1:7400. `--insecure` skips credentials and talks
plaintext, to a loopback master only (one started with `--insecure`).

`select()` records the CLI's global flags once per process (main.py calls it);
`MasterClient` asks `credentials_for(address)` when it connects.
"""

from __future__ import annotations

import os

from kernel.records import NamedTuple
from master.pki.clientconfig import (
    CONFIG_NAME,
    ClientConfig,
    ConfigError,
    is_loopback,
    read_client_config,
)

DEFAULT_MASTER = "127.0.0.1:7400"


class CredentialsError(Exception):
    """No usable credentials; the message is one sentence for the user."""


# NamedTuples, not dataclasses: cheaper to make at start-up (master/pki/clientconfig.py).
class Selection(NamedTuple):
    config: str | None = None
    insecure: bool = False


class Credentials(NamedTuple):
    # None with insecure=True: plaintext; None otherwise: nothing was found.
    config: ClientConfig | None
    source: str = ""
    insecure: bool = False


_selection = Selection()


def select(config: str | None, insecure: bool) -> None:
    global _selection
    _selection = Selection(config, insecure)


def _home() -> str:
    return os.path.expanduser("~")


def home_config() -> str:
    return os.path.join(_home(), ".pinnace", CONFIG_NAME)


def master_data_config() -> str:
    data_dir = os.environ.get("PINNACE_DATA_DIR") or os.path.join(_home(), ".pinnace", "master")
    return os.path.join(data_dir, CONFIG_NAME)


def _explicit() -> str | None:
    named = _selection.config or os.environ.get("PINNACE_CONFIG")
    return os.path.expanduser(named) if named else None


def _load(path: str) -> ClientConfig:
    try:
        return read_client_config(path)
    except ConfigError as e:
        raise CredentialsError(f"error: {e}") from None


def configured_master() -> str | None:
    """The `server` of the config that lookup steps 1-3 find, if any."""
    explicit = _explicit()
    if explicit is not None:
        return _load(explicit).server if os.path.exists(explicit) else None
    home = home_config()
    return _load(home).server if os.path.exists(home) else None


def master_address(flag: str | None) -> str:
    return flag or os.environ.get("PINNACE_MASTER") or configured_master() or DEFAULT_MASTER


def credentials_for(address: str) -> Credentials:
    host = address.rsplit(":", 1)[0].strip("[]")
    if _selection.insecure:
        if not is_loopback(host):
            raise CredentialsError(
                f"error: --insecure talks plaintext and only to a master on this machine "
                f"(loopback), not to {address}"
            )
        return Credentials(None, insecure=True)
    explicit = _explicit()
    if explicit is not None:
        if not os.path.exists(explicit):
            raise CredentialsError(f"error: the credentials file {explicit} does not exist")
        return Credentials(_load(explicit), explicit)
    candidates = [home_config()]
    if is_loopback(host):
        candidates.append(master_data_config())
    for path in candidates:
        if os.path.exists(path):
            return Credentials(_load(path), path)
    return Credentials(None)


# How long a master that refuses connections (restarting) is waited for; with several masters
# a dead one is given up on sooner, for the next.
CONNECT_WAIT_SECONDS = 4.0
CONNECT_WAIT_SEVERAL_SECONDS = 1.0


class Masters(NamedTuple):
    """The masters a `--master a,b,c` names, the credentials for them (the masters of one
    cluster share them) and how long each is waited for: what both of the CLI's clients,
    grpcio's (client.py) and apply's own (h2_client.py), start from."""

    addresses: list[str]
    credentials: Credentials
    connect_wait: float


def masters(address: str) -> Masters:
    """`address` split into its masters; CredentialsError when credentials cannot be used."""
    addresses = [a.strip() for a in address.split(",") if a.strip()] or [address]
    credentials = Credentials(None)
    for a in addresses:
        credentials = credentials_for(a)
    wait = CONNECT_WAIT_SECONDS if len(addresses) == 1 else CONNECT_WAIT_SEVERAL_SECONDS
    return Masters(addresses, credentials, wait)


def no_credentials(address: str) -> str:
    return (
        f"error: no credentials for the pinnace master at {address}: pass --config FILE or "
        f"set PINNACE_CONFIG (the master writes DATA_DIR/{CONFIG_NAME} when it starts)"
    )
