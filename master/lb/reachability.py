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

A round that fails is not yet a verdict: only MISSED_ROUNDS_TO_FAIL failed rounds in a row
make the node's pods "not answering" (until then the last verdict stands), while one round
that answers counts at once (`next_verdict`). A connect times out on a loaded machine too
(the master's loop starved past `timeout`), and a wrong "not answering" replaces a live
node's pods: an agent restarting at load 60 had its three running pods rescheduled.

Only the TCP connect is tried — what HAProxy's own `check` does for a TCP
backend; the load balancer's health checks still judge each pod for traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kernel.clock import Clock
from master.model import Node, Pod
from master.state import ClusterState

log = logging.getLogger(__name__)

# Pods probed per node and round: a few, so one crashed container does not make a live
# machine look dead, and one stray answer does not make a dead one look alive.
PODS_PER_NODE = 4
# Failed rounds in a row before a node's pods count as not answering (see the module doc):
# about 1.5 s more for a dead machine whose agent had said goodbye.
MISSED_ROUNDS_TO_FAIL = 3


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the probe says of a node after its latest round."""

    # True: its pods answer; False: they have not for MISSED_ROUNDS_TO_FAIL rounds; None:
    # not known yet (no round answered, too few failed).
    answering: bool | None
    # Failed rounds in a row.
    missed: int = 0


def next_verdict(previous: Verdict | None, answered: bool) -> Verdict:
    """The verdict after a round: answering at once; not answering only after
    MISSED_ROUNDS_TO_FAIL failed rounds in a row (before that, the previous verdict)."""
    if answered:
        return Verdict(True)
    missed = (previous.missed if previous is not None else 0) + 1
    if missed >= MISSED_ROUNDS_TO_FAIL:
        return Verdict(False, missed)
    return Verdict(previous.answering if previous is not None else None, missed)


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
        self._results: dict[str, tuple[float, Verdict]] = {}

    def answering(self, node: str) -> bool | None:
        result = self._results.get(node)
        if result is None or self._clock.monotonic() - result[0] > self._fresh_for:
            return None
        return result[1].answering

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
        previous = self._results.get(node)
        # A verdict too old to count is no history either.
        if previous is not None and started - previous[0] > self._fresh_for:
            previous = None
        verdict = next_verdict(previous[1] if previous else None, node_answers(answers))
        self._results[node] = (started, verdict)

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
