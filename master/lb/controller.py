"""Keeps the HAProxy in step with the cluster: the master's load-balancer loop.

State changes (Services, Pods, Nodes) mark the LB dirty; the loop recomputes
the desired LB state with the pure `compute_lb_services` and hands it to the
HAProxy driver, which changes servers through the Runtime API (no reload) or,
for new services or ports, validates and hot-reloads.

It also gates graceful removal: a pod asked to stop keeps running until the
applied LB state no longer sends it new traffic (drain), and only then does its
agent get the stop order (`is_released`). If the LB cannot be programmed, the
gate opens after `drain_timeout` so a broken HAProxy never keeps pods forever.
LoadBalancer services get the LB's advertised address as their ingress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from kernel.clock import Clock
from master.lb.endpoints import compute_lb_services, pods_released
from master.lb.haproxy import HAProxyDriver
from master.lb.model import LbService
from master.model import Node, Pod, Service, StoredObject
from master.state import ClusterState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LbAddresses:
    """Where services are reachable: LoadBalancer services on `listen` (shown as
    `advertise`), every service on `internal` (its cluster IP)."""

    listen: str
    advertise: str = ""
    internal: str = ""
    port_offset: int = 0

    @property
    def external_ip(self) -> str:
        return self.advertise or self.listen

    @property
    def cluster_ip(self) -> str:
        return self.internal or self.external_ip


class LoadBalancerController:
    def __init__(
        self,
        state: ClusterState,
        clock: Clock,
        driver: HAProxyDriver,
        addresses: LbAddresses,
        drain_timeout: float = 10.0,
        drain_delay: float = 1.0,
    ) -> None:
        self._state = state
        self._clock = clock
        self._driver = driver
        self._addresses = addresses
        self._drain_timeout = drain_timeout
        # Requests already sent to a draining pod finish before it is stopped: the
        # stop order goes out `drain_delay` after HAProxy stopped sending it new ones.
        self._drain_delay = drain_delay
        self._drained_at: dict[str, float] = {}
        self._dirty = asyncio.Event()
        self._applied: list[LbService] | None = None
        self._released: set[str] = set()
        self._on_released: Callable[[set[str]], None] = lambda nodes: None
        state.subscribe(self._on_change)

    @property
    def workdir(self) -> Path:
        return self._driver.config_path.parent

    def on_released(self, callback: Callable[[set[str]], None]) -> None:
        """Called with the nodes whose pods were released, so their orders are re-sent."""
        self._on_released = callback

    def is_released(self, pod: Pod) -> bool:
        if pod.meta.name in self._released:
            return True
        return self._clock.now() - pod.deletion_requested_at >= self._drain_timeout

    def _on_change(self, kind: str, obj: StoredObject, deleted: bool) -> None:
        if isinstance(obj, Service | Pod | Node):
            self._dirty.set()

    async def run(self) -> None:
        try:
            while True:
                if not self._driver.running:
                    await self._restart()
                tick = 0.25 if self._drained_at.keys() - self._released else 1.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(), timeout=tick)
                self._dirty.clear()
                try:
                    await self.sync_once()
                except Exception as e:
                    log.error("programming HAProxy failed: %s; retrying", e)
                    self._applied = None
                    await asyncio.sleep(1.0)
                    self._dirty.set()
        finally:
            await self._driver.stop()

    async def _restart(self) -> None:
        """(Re)start HAProxy until it runs; every failure is logged, never swallowed."""
        delay = 0.5
        while True:
            try:
                await self._driver.stop()
                await self._driver.start()
                self._applied = None
                log.info("load balancer (HAProxy) running, pid %s", self._driver.pid)
                return
            except Exception as e:
                log.error(
                    "the load balancer (HAProxy) failed to start: %s; retrying in %.1fs", e, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def sync_once(self) -> None:
        pods = self._state.pods()
        nodes = {
            n.meta.name: n.status.serving
            for n in self._state.objects("Node")
            if isinstance(n, Node)
        }
        services = [s for s in self._state.objects("Service") if isinstance(s, Service)]
        a = self._addresses
        desired = compute_lb_services(
            services, pods, nodes, a.port_offset, a.listen, a.internal or a.listen
        )
        if desired != self._applied:
            await self._driver.apply(desired)
            self._applied = desired
        self._release(desired, pods)
        self._set_ingress(services)

    def _release(self, applied: list[LbService], pods: list[Pod]) -> None:
        stopping = [p for p in pods if p.deletion_requested_at]
        now = self._clock.now()
        drained = pods_released(applied, stopping)
        self._drained_at = {name: self._drained_at.get(name, now) for name in drained}
        released = {
            name for name, since in self._drained_at.items() if now - since >= self._drain_delay
        } | {p.meta.name for p in stopping if self.is_released(p)}
        newly = released - self._released
        self._released = released
        if newly:
            nodes = {p.node_name for p in stopping if p.meta.name in newly}
            self._on_released(nodes)

    def _set_ingress(self, services: list[Service]) -> None:
        for svc in services:
            ingress = self._addresses.external_ip if svc.type == "LoadBalancer" else ""
            cluster_ip = self._addresses.cluster_ip
            if (svc.ingress_ip, svc.cluster_ip) != (ingress, cluster_ip):
                self._state.put(replace(svc, ingress_ip=ingress, cluster_ip=cluster_ip))
