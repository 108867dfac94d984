"""The master's own probe of pods on nodes whose agent is away: do they still answer?

A node whose agent's session ended (a restart, a crash of the agent alone) or
whose agent said goodbye may still run healthy pods — or be a dead machine.
Its silence alone cannot tell; its pods can. While a node is suspect, this
task connects over TCP to a few of its pods' published endpoints (the same
addresses the load balancer sends traffic to) every `interval`; a node answers
when at least half of them accept a connection (`node_answers`): one stray answer
(a port taken over by another process, a proxy left behind) no longer keeps a dead
machine's pods for the whole grace, and one crashed container of several still
does not make a live machine look dead. The node lifecycle
(master/controllers/lifecycle.py) reads the result: a node whose pods answer is
Unknown and keeps them; one whose pods do not is NotReady and its pods are
replaced. Results older than `fresh_for` count as "not probed".

Only the TCP connect is tried — what HAProxy's own `check` does for a TCP
backend; the load balancer's health checks still judge each pod for traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from kernel.clock import Clock
from master.model import Node, Pod
from master.state import ClusterState

log = logging.getLogger(__name__)

# Pods probed per node and round: a few, so one crashed container does not make a live
# machine look dead, and one stray answer does not make a dead one look alive.
PODS_PER_NODE = 4


def node_answers(answers: Sequence[bool]) -> bool:
    """Whether a node's probed pods say it is alive: at least half of them answered."""
    answered = sum(1 for a in answers if a)
    return answered > 0 and 2 * answered >= len(answers)


def endpoints_of(pods: Sequence[Pod], limit: int = PODS_PER_NODE) -> list[tuple[str, int]]:
    """(address, port) of up to `limit` of these pods: one published port each."""
    found: list[tuple[str, int]] = []
    for pod in sorted(pods, key=lambda p: p.meta.name):
        if pod.deletion_requested_at or not pod.status.host_ip:
            continue
        ports = sorted(p for p in pod.status.port_map.values() if p)
        if ports:
            found.append((pod.status.host_ip, ports[0]))
        if len(found) >= limit:
            break
    return found


class PodReachability:
    """Probes the pods of suspect nodes; `answering(node)` is the latest fresh verdict."""

    def __init__(
        self,
        state: ClusterState,
        clock: Clock,
        suspect: Callable[[Node], bool],
        interval: float = 0.5,
        timeout: float = 0.5,
        fresh_for: float = 2.0,
    ) -> None:
        self._state = state
        self._clock = clock
        self._suspect = suspect
        self._interval = interval
        self._timeout = timeout
        self._fresh_for = fresh_for
        self._results: dict[str, tuple[float, bool]] = {}

    def answering(self, node: str) -> bool | None:
        result = self._results.get(node)
        if result is None or self._clock.monotonic() - result[0] > self._fresh_for:
            return None
        return result[1]

    async def run(self) -> None:
        while True:
            nodes = [
                n for n in self._state.objects("Node") if isinstance(n, Node) and self._suspect(n)
            ]
            names = {n.meta.name for n in nodes}
            for gone in set(self._results) - names:
                del self._results[gone]
            if nodes:
                await asyncio.gather(*(self._probe_node(n.meta.name) for n in nodes))
            await asyncio.sleep(self._interval)

    async def _probe_node(self, node: str) -> None:
        targets = endpoints_of(self._state.pods_on_node(node))
        if not targets:
            self._results.pop(node, None)
            return
        started = self._clock.monotonic()
        answers = await asyncio.gather(*(self._connect(host, port) for host, port in targets))
        self._results[node] = (started, node_answers(answers))

    async def _connect(self, host: str, port: int) -> bool:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), timeout=self._timeout
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
