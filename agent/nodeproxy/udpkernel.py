"""The UDP rules' shell: apply what agent/nodeproxy/udprules.py decides, with nft and conntrack.

One table per node (`udprules.table_name`), replaced whole by one `nft -f` (a single
transaction: the kernel never holds half a table), deleted when the last UDP Service
goes and when the node proxy is stopped (`remove_udp_rules`, which finds the table by
the name written beside the proxy's config). Like the proxy's HAProxy the table outlives
an agent that merely exits: the data plane keeps serving and the next agent replaces
it with the master's newest table.

After the rules change, conntrack entries of endpoints that went are deleted (and those
of ports that just got their first endpoint): `udprules.stale_flows`. Right after an
agent start what the kernel held is unknown, so nothing is deleted then. Needs root
(CAP_NET_ADMIN) as the route does, and Debian's nftables and conntrack packages
(compose/install-deps.sh).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from pathlib import Path

from agent.nodeproxy.table import ServiceTable
from agent.nodeproxy.udprules import (
    UdpPort,
    backend_addresses,
    delete_script,
    render_rules,
    stale_flows,
    table_name,
    udp_ports,
)
from kernel.bindprobe import bind_error

log = logging.getLogger(__name__)

# Beside the proxy's files: the name of the table this node's rules are in.
TABLE_FILE = "udp-table"
RULES_FILE = "udp.nft"


class UdpRulesError(RuntimeError):
    """The UDP rules could not be applied: one sentence saying what to do."""


def is_local(address: str) -> bool:
    """Whether `address` is one of this machine's (a socket can bind to it)."""
    return bind_error(address, 0) is None


def _run(command: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=10, check=False
    )


class UdpRules:
    """This node's UDP Services in the kernel; `apply` once per service table."""

    def __init__(
        self,
        workdir: Path,
        node: str,
        run: Callable[[list[str], str], subprocess.CompletedProcess[str]] = _run,
        local: Callable[[str], bool] = is_local,
        node_ranges: tuple[str, ...] = (),
    ) -> None:
        self._workdir = workdir
        self.name = table_name(node)
        self._run = run
        self._local = local
        # --nodeport-addresses: the ranges whose addresses answer on UDP node ports.
        self._ranges = node_ranges
        # What the kernel holds (None: unknown, right after a start).
        self._ports: tuple[UdpPort, ...] | None = None
        self._text = ""

    def apply(self, table: ServiceTable) -> tuple[UdpPort, ...]:
        """Make the kernel hold `table`'s UDP rules; the ports served. Raises UdpRulesError."""
        local = {a for a in backend_addresses(table) if self._local(a)}
        ports = udp_ports(table, local)
        if not any(p.targets for p in ports):
            self._delete_table()
            text = ""
        else:
            text = render_rules(self.name, ports, self._ranges)
            if text != self._text:
                # Named before it is made: an agent killed between the two leaves a table
                # its stop (remove_udp_rules) can find; deleting one never made is harmless.
                self._workdir.mkdir(parents=True, exist_ok=True)
                (self._workdir / TABLE_FILE).write_text(self.name + "\n")
                self._nft(text)
                (self._workdir / RULES_FILE).write_text(text)
        if self._ports is not None:
            for flows in stale_flows(self._ports, ports):
                self._conntrack(flows.conntrack_args())
        self._ports, self._text = ports, text
        return ports

    def _nft(self, text: str) -> None:
        try:
            done = self._run(["nft", "-f", "-"], text)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise UdpRulesError(
                f"cannot program UDP Services (nft: {e}); install nftables, or UDP Services' "
                "cluster IPs and node ports are not served on this node"
            ) from None
        if done.returncode != 0:
            raise UdpRulesError(
                f"cannot program UDP Services (nft -f: {done.stderr.strip()[:300]}); run the "
                "agent as root (CAP_NET_ADMIN)"
            )

    def _delete_table(self) -> None:
        if self._text == "" and self._ports is not None:
            return
        if self._text or (self._workdir / TABLE_FILE).exists():
            delete_table(self._run, self.name)
            (self._workdir / TABLE_FILE).unlink(missing_ok=True)
            (self._workdir / RULES_FILE).unlink(missing_ok=True)

    def _conntrack(self, command: list[str]) -> None:
        try:
            done = self._run(command, "")
        except (OSError, subprocess.TimeoutExpired) as e:
            log.warning("node proxy: %s: %s; a UDP client may stay on a gone endpoint", command, e)
            return
        # Exit 1 with "0 flow entries" only means there was nothing to delete.
        if done.returncode != 0 and " 0 flow entries" not in done.stderr:
            log.warning("node proxy: %s: %s", " ".join(command), done.stderr.strip()[:300])

    def remove(self) -> None:
        """Delete this node's table (the node proxy is being stopped)."""
        remove_udp_rules(self._workdir, self._run)
        self._ports, self._text = (), ""


def delete_table(
    run: Callable[[list[str], str], subprocess.CompletedProcess[str]], name: str
) -> None:
    """Delete table `name` if it exists (one transaction: add-if-missing, then delete)."""
    try:
        run(["nft", "-f", "-"], delete_script(name))
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("node proxy: cannot delete nftables table %s: %s", name, e)


def remove_udp_rules(
    workdir: Path, run: Callable[[list[str], str], subprocess.CompletedProcess[str]] = _run
) -> str:
    """Delete the table the node proxy in `workdir` left (its name is in TABLE_FILE); the
    table's name, or "" if there was none."""
    marker = workdir / TABLE_FILE
    try:
        name = marker.read_text().strip()
    except OSError:
        return ""
    if name:
        delete_table(run, name)
    marker.unlink(missing_ok=True)
    (workdir / RULES_FILE).unlink(missing_ok=True)
    return name
