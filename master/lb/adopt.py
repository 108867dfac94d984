"""What a running HAProxy holds, read back by a master that did not start it (pure).

HAProxy outlives the master (see process.py), so a starting master finds it serving and must
know its slot table before it changes anything. Two sources, neither enough alone:

- `state.json`, written by the driver after every change HAProxy took: the slot table with pod
  names and each backend's listen port, addresses and mode, the ingress frontend's routes and
  certificate digests, plus a fingerprint of the settings the config was rendered with;
- the live servers (`show servers state`): address, port and admin state of every slot, which
  is the truth when the two disagree (a master killed between a Runtime API command and the
  file write).

`adopt_state(saved, fingerprint, live)` merges them: each slot takes its live address and mode;
its pod name is kept only where the live address matches the saved one, else the slot is marked
unknown so the next plan rewrites it. When the layout differs (other backends or slot counts) or
the settings changed, it returns an empty LbState: the next plan then reloads with the full
config, hitless, which is always correct.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from master.lb.model import (
    EMPTY_ADDRESS,
    BackendState,
    CertRef,
    HostRoutes,
    IngressFrontend,
    LbState,
    Route,
    Slot,
    SlotMode,
)
from master.lb.slots import backend_name, server_name

# A slot whose pod is not known: no desired endpoint has this key, so the plan replaces it.
UNKNOWN_POD = "?"

# srv_admin_state bits (HAProxy's SRV_ADMF_*): forced/inherited/resolution maintenance, and
# forced/inherited drain. 0x04 (maintenance from the config) is informational only.
_ADMIN_MAINT = 0x01 | 0x02 | 0x20
_ADMIN_DRAIN = 0x08 | 0x10


@dataclass(frozen=True, slots=True)
class LiveServer:
    """One server slot as `show servers state` reports it."""

    backend: str
    server: str
    address: str
    port: int
    mode: SlotMode


def admin_mode(admin_state: int) -> SlotMode:
    if admin_state & _ADMIN_MAINT:
        return "maint"
    return "drain" if admin_state & _ADMIN_DRAIN else "ready"


def settings_fingerprint(config_without_backends: str) -> str:
    """Identifies the global and defaults sections a config was rendered with."""
    return hashlib.sha256(config_without_backends.encode()).hexdigest()[:16]


def encode_state(state: LbState, fingerprint: str) -> bytes:
    backends = [
        {
            "service": b.service,
            "port_name": b.port_name,
            "listen_port": b.listen_port,
            "mode": b.mode,
            "bind_addresses": list(b.bind_addresses),
            "frontend": b.frontend,
            "slots": [[s.pod, s.address, s.port, s.mode] for s in b.slots],
        }
        for b in state.backends
    ]
    doc = {
        "version": 1,
        "settings": fingerprint,
        "backends": backends,
        "ingress": _encode_ingress(state.ingress),
    }
    return json.dumps(doc).encode()


def _encode_ingress(ingress: IngressFrontend | None) -> Any:
    """The ingress frontend: routes, ports and certificate digests (never their content)."""
    if ingress is None:
        return None
    return {
        "bind_address": ingress.bind_address,
        "http_port": ingress.http_port,
        "https_port": ingress.https_port,
        "hosts": [
            [h.host, [[r.path, r.exact, r.backend, r.ingress] for r in h.routes]]
            for h in ingress.hosts
        ],
        "default_backend": ingress.default_backend,
        "certs": [[c.file, c.digest, list(c.hosts)] for c in ingress.certs],
        "redirect_hosts": list(ingress.redirect_hosts),
    }


def _key(raw: Any) -> tuple[str, str] | None:
    if raw is None:
        return None
    service, port_name = raw
    return (str(service), str(port_name))


def _decode_ingress(raw: Any) -> IngressFrontend | None:
    if raw is None:
        return None
    return IngressFrontend(
        bind_address=str(raw["bind_address"]),
        http_port=int(raw["http_port"]),
        https_port=int(raw["https_port"]),
        hosts=tuple(
            HostRoutes(
                str(host),
                tuple(
                    Route(str(path), bool(exact), _key(backend), str(owner))
                    for path, exact, backend, owner in routes
                ),
            )
            for host, routes in raw["hosts"]
        ),
        default_backend=_key(raw["default_backend"]),
        certs=tuple(
            CertRef(str(file), str(sha), tuple(str(h) for h in hosts))
            for file, sha, hosts in raw["certs"]
        ),
        # Absent in a state an older master wrote: then the config differs and it reloads.
        redirect_hosts=tuple(str(h) for h in raw.get("redirect_hosts", ())),
    )


def decode_state(data: bytes) -> tuple[LbState, str] | None:
    """(state, settings fingerprint), or None for anything unreadable (then: reload)."""
    try:
        raw: Any = json.loads(data)
        if raw.get("version") != 1:
            return None
        backends = tuple(
            BackendState(
                service=str(b["service"]),
                port_name=str(b["port_name"]),
                listen_port=int(b["listen_port"]),
                mode="http" if b["mode"] == "http" else "tcp",
                bind_addresses=tuple(str(a) for a in b["bind_addresses"]),
                slots=tuple(_slot(s) for s in b["slots"]),
                frontend=bool(b.get("frontend", True)),
            )
            for b in raw["backends"]
        )
        ingress = _decode_ingress(raw.get("ingress"))
        return LbState(backends=backends, ingress=ingress), str(raw["settings"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _slot(raw: list[Any]) -> Slot:
    pod, address, port, mode = raw
    if mode not in ("ready", "drain", "maint"):
        raise ValueError(f"slot mode {mode!r}")
    return Slot(pod=str(pod), address=str(address), port=int(port), mode=mode)


def parse_show_servers_state(text: str) -> tuple[LiveServer, ...]:
    """Rows of `show servers state` (format version 1, as HAProxy 2.x prints it)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != "1":
        raise ValueError(f"unexpected 'show servers state' answer: {text[:200]!r}")
    header: list[str] = []
    servers: list[LiveServer] = []
    for line in lines[1:]:
        if line.startswith("#"):
            header = line[1:].split()
            continue
        row = dict(zip(header, line.split(), strict=False))
        servers.append(
            LiveServer(
                backend=row["be_name"],
                server=row["srv_name"],
                address=row["srv_addr"],
                port=int(row.get("srv_port", "0")),
                mode=admin_mode(int(row["srv_admin_state"])),
            )
        )
    return tuple(servers)


def adopt_state(saved: LbState | None, fingerprint_ok: bool, live: Sequence[LiveServer]) -> LbState:
    """The slot table HAProxy really holds, or LbState() when only a reload can tell."""
    if saved is None or not fingerprint_ok:
        return LbState()
    by_backend: dict[str, dict[str, LiveServer]] = {}
    for server in live:
        by_backend.setdefault(server.backend, {})[server.server] = server
    if set(by_backend) != {backend_name(b.service, b.port_name) for b in saved.backends}:
        return LbState()
    backends = []
    for backend in saved.backends:
        servers = by_backend[backend_name(backend.service, backend.port_name)]
        names = [server_name(i) for i in range(len(backend.slots))]
        if set(servers) != set(names):
            return LbState()
        slots = tuple(
            _live_slot(old, servers[name]) for old, name in zip(backend.slots, names, strict=True)
        )
        backends.append(
            BackendState(
                service=backend.service,
                port_name=backend.port_name,
                listen_port=backend.listen_port,
                slots=slots,
                mode=backend.mode,
                bind_addresses=backend.bind_addresses,
                frontend=backend.frontend,
            )
        )
    # Routes and certificates are not in `show servers state`; the saved ones are what the
    # config was rendered with (a reload with other ones saves them too).
    return LbState(backends=tuple(backends), ingress=saved.ingress)


def _live_slot(saved: Slot, live: LiveServer) -> Slot:
    if (live.address, live.port) == (EMPTY_ADDRESS, 0) and live.mode == "maint":
        return Slot()
    pod = saved.pod if (saved.address, saved.port) == (live.address, live.port) else ""
    return Slot(pod=pod or UNKNOWN_POD, address=live.address, port=live.port, mode=live.mode)
