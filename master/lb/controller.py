"""Keeps the HAProxy in step with the cluster: the master's load-balancer loop.

State changes (Services, Ingresses, Secrets, and Pods and Nodes that move an endpoint or a
stopping pod) mark the LB dirty; the loop assembles the desired LB state (what the pure
`compute_lb_services` computes from every pod, from the endpoints kept by each change in
master/lb/endpoint_index.py) and hands it to the HAProxy driver, which changes servers
through the Runtime API (no reload) or, for new services or ports, validates and
hot-reloads.

It also gates graceful removal: a pod asked to stop keeps running until the
applied LB state no longer sends it new traffic (drain), and only then does its
agent get the stop order (`is_released`). If the LB cannot be programmed, the
gate opens after `drain_timeout` so a broken HAProxy never keeps pods forever.
LoadBalancer services get the LB's advertised address as their ingress.

A Service the LB cannot serve (its port taken, HAProxy refusing it) is left out
and reported on the Service (conflicts.py); every other Service is still
programmed. HAProxy outlives this loop: a master that stops leaves it serving
(unless told `stop_on_exit`), and the next one adopts it.

Ingresses (and the Secrets their TLS names) are planned beside the Services by the pure
`plan_ingress` (master/lb/ingress.py): their HTTP backends join the Services' in the
slot table, their routes and certificates form the ingress frontend. An ingress port an
older Service holds is left out; routes HAProxy refuses (a port another process holds)
are left out for `refused_retry` or until an Ingress or Secret changes; either way the
Ingresses get a Warning event and every Service is still programmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from kernel.clock import Clock
from master.lb.conflicts import plan_services, service_status
from master.lb.endpoint_index import LbEndpoints
from master.lb.endpoints import assemble_lb_services, released_of, serving_pods
from master.lb.haproxy import HAProxyDriver
from master.lb.ingress import (
    INGRESS_HTTP_HOLDER,
    INGRESS_HTTPS_HOLDER,
    IngressPlan,
    IngressPorts,
    Problem,
    ingress_ref,
    ingress_reserved,
    ingress_status,
    plan_ingress,
)
from master.lb.model import Endpoint, IngressFrontend, LbAddresses, LbService, Unservable
from master.lb.runtime import HAProxyError
from master.lb.shares import Lookups
from master.metrics.series import RECONCILE, timed
from master.model import (
    Ingress,
    IngressClass,
    Node,
    Pod,
    Secret,
    Service,
    ServicePort,
    StoredObject,
    lb_name,
    pod_ref,
)
from master.state import ClusterState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Refusal:
    at: float
    generation: int
    problem: Unservable


class LoadBalancerController:
    def __init__(
        self,
        state: ClusterState,
        clock: Clock,
        driver: HAProxyDriver,
        addresses: LbAddresses,
        drain_timeout: float = 10.0,
        drain_delay: float = 1.0,
        refused_retry: float = 30.0,
        stop_on_exit: bool = False,
        ingress_ports: IngressPorts | None = None,
    ) -> None:
        self._state = state
        self._clock = clock
        self._driver = driver
        self._addresses = addresses
        self._drain_timeout = drain_timeout
        self._stop_on_exit = stop_on_exit
        # Requests already sent to a draining pod finish before it is stopped: the
        # stop order goes out `drain_delay` after HAProxy stopped sending it new ones.
        self._drain_delay = drain_delay
        self._drained_at: dict[str, float] = {}
        self._dirty = asyncio.Event()
        self._applied: tuple[list[LbService], IngressFrontend | None] | None = None
        self._ingress_ports = ingress_ports
        # When HAProxy refused the ingress frontend, why, and the Ingresses' generations then:
        # it is left out (the Services still served) until `refused_retry` passed or an
        # Ingress or a Secret changed.
        self._ingress_refused: tuple[float, str, dict[str, int]] | None = None
        self._released: set[str] = set()
        self._on_released: Callable[[set[str]], None] = lambda nodes: None
        # Services HAProxy itself refused (e.g. a port some other process holds): when, and
        # why. Tried again after `refused_retry` seconds or as soon as the Service changes.
        self._refused: dict[str, _Refusal] = {}
        # The stored IngressClasses, read with the Ingresses on each pass.
        self._classes: list[IngressClass] = []
        self._refused_retry = refused_retry
        # Each Service's endpoints and the pods being stopped, moved by each change (a pass
        # walked every pod several times).
        self._endpoints = LbEndpoints(
            [s for s in state.objects("Service") if isinstance(s, Service)],
            state.pods(),
            Lookups(state.pods, state.pods_on_node, state.pods_of_owner, self._serving),
            # Pods of loopback nodes at their own IPs: no Docker userland proxy on the way.
            pod_ips=True,
        )
        # The pods the applied state sends new traffic to, with the state they came from.
        self._serving_in: tuple[list[LbService], set[str]] | None = None
        state.subscribe(self._on_change)

    def _serving(self, name: str) -> bool:
        node = self._state.get("Node", name)
        return isinstance(node, Node) and node.status.serving

    @property
    def workdir(self) -> Path:
        return self._driver.config_path.parent

    def on_released(self, callback: Callable[[set[str]], None]) -> None:
        """Called with the nodes whose pods were released, so their orders are re-sent."""
        self._on_released = callback

    def is_released(self, pod: Pod) -> bool:
        if pod_ref(pod) in self._released:
            return True
        return self._clock.now() - pod.deletion_requested_at >= self._drain_timeout

    def _on_change(
        self, kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
    ) -> None:
        moved = self._endpoints.on_change(obj, deleted, previous)
        if isinstance(obj, Pod | Node):
            # A pass reads pods and nodes only through their endpoints and the stopping
            # pods: a status report that moves neither needs none.
            if moved:
                self._dirty.set()
        elif isinstance(obj, Service | Ingress | Secret | IngressClass):
            self._dirty.set()
        refused = self._ingress_refused
        if refused is not None and isinstance(obj, Secret | Ingress):
            # Our own status updates of Ingresses come back here too; only a new spec counts.
            generation = refused[2].get(ingress_ref(obj)) if isinstance(obj, Ingress) else None
            if deleted or generation != obj.meta.generation:
                self._ingress_refused = None
        if isinstance(obj, Service):
            entry = self._refused.get(lb_name(obj))
            # Our own status update comes back here too; only a new spec earns a retry.
            if entry is not None and (deleted or obj.meta.generation != entry.generation):
                del self._refused[lb_name(obj)]

    async def run(self) -> None:
        try:
            while True:
                if not self._driver.running:
                    await self._restart()
                tick = 0.25 if self._drained_at.keys() - self._released else 1.0
                # Not wait_for: on Python 3.11 it can lose a cancel (see the manager's loop).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(tick):
                        await self._dirty.wait()
                self._dirty.clear()
                try:
                    with timed(RECONCILE.labels("loadbalancer")):
                        await self.sync_once()
                except Exception as e:
                    log.error("programming HAProxy failed: %s; retrying", e)
                    self._applied = None
                    await asyncio.sleep(1.0)
                    self._dirty.set()
        finally:
            # HAProxy is the data plane: by default it keeps serving while no master runs.
            if self._stop_on_exit:
                await self._driver.stop()
            else:
                await self._driver.close()

    async def _restart(self) -> None:
        """(Re)start HAProxy until it runs; every failure is logged, never swallowed."""
        delay = 0.5
        while True:
            try:
                await self._driver.stop()
                await self._driver.start()
                self._applied = None
                how = "adopted" if self._driver.adopted else "started"
                log.info("load balancer (HAProxy) %s, pid %s", how, self._driver.pid)
                return
            except Exception as e:
                log.error(
                    "the load balancer (HAProxy) failed to start: %s; retrying in %.1fs", e, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def sync_once(self) -> None:
        services = [s for s in self._state.objects("Service") if isinstance(s, Service)]
        a = self._addresses
        now = self._clock.now()
        self._refused = {
            name: entry
            for name, entry in self._refused.items()
            if now - entry.at < self._refused_retry
        }
        ingresses = [i for i in self._state.objects("Ingress") if isinstance(i, Ingress)]
        self._classes = [
            c for c in self._state.objects("IngressClass") if isinstance(c, IngressClass)
        ]
        reserved = ingress_reserved(self._ingress_ports, ingresses, self._classes)
        own, unservable = plan_services(services, a, reserved)
        blocked = {
            holder: problem
            for holder in (INGRESS_HTTP_HOLDER, INGRESS_HTTPS_HOLDER)
            if (problem := unservable.pop(holder, None)) is not None
        }
        for name, entry in self._refused.items():
            unservable.setdefault(name, entry.problem)
        servable = [s for s in services if lb_name(s) not in unservable]
        desired = assemble_lb_services(
            servable,
            self._endpoints.endpoints,
            a.port_offset,
            a.listen,
            a.bind_internal,
            own_addresses=own,
            tcp_only=True,
        )
        plan = self._plan_ingress(ingresses, services, blocked, now)
        wanted = (desired + list(plan.backends), plan.frontend)
        applied = self._applied
        if applied is None or applied != wanted:
            applied = await self._apply_isolating(desired, unservable, plan, ingresses)
            if applied[1] is None and plan.frontend is not None:
                # HAProxy refused the routes: plan again, so the Ingresses say why.
                plan = self._plan_ingress(ingresses, services, blocked, now)
            self._applied = applied
        self._release(applied[0], self._endpoints.stopping())
        self._set_status(services, unservable, own)
        self._set_ingress_status(ingresses, plan)

    def _plan_ingress(
        self,
        ingresses: list[Ingress],
        services: list[Service],
        blocked: dict[str, Unservable],
        now: float,
    ) -> IngressPlan:
        """The Ingress plan on the ports the ingress may use now: a port an older Service
        holds is left out, and both while HAProxy's refusal of the routes is fresh."""
        ports = self._ingress_ports or IngressPorts(self._addresses.listen, 0, 0)
        refused = self._ingress_refused
        if refused is not None and now - refused[0] >= self._refused_retry:
            self._ingress_refused = refused = None
        problems = [Problem(b.reason, b.message) for b in blocked.values()]
        if INGRESS_HTTP_HOLDER in blocked:
            ports = replace(ports, http_port=0)
        if INGRESS_HTTPS_HOLDER in blocked:
            ports = replace(ports, https_port=0)
        if refused is not None:
            problems.append(
                Problem("LoadBalancerFailed", f"HAProxy refused the Ingress routes: {refused[1]}")
            )
            ports = replace(ports, http_port=0, https_port=0)
        secrets = [s for s in self._state.objects("Secret") if isinstance(s, Secret)]
        return plan_ingress(
            ingresses, services, secrets, (), {}, ports, problems, self._classes, self._backend
        )

    def _backend(self, svc: Service, port: ServicePort) -> tuple[Endpoint, ...]:
        """An Ingress backend's endpoints, kept by each change (plan_ingress's from pods)."""
        return self._endpoints.backend(svc, svc.ports.index(port))

    async def _apply_isolating(
        self,
        desired: list[LbService],
        unservable: dict[str, Unservable],
        plan: IngressPlan,
        ingresses: list[Ingress],
    ) -> tuple[list[LbService], IngressFrontend | None]:
        """Apply `desired` and the Ingress `plan`. If HAProxy refuses them, the Services are
        applied alone first, leaving out new ones it refuses (each recorded in `unservable`);
        then the Ingress routes are tried again beside what was applied, and left out if
        refused (recorded for the Ingresses' status), so everything else is programmed.

        Returns what was applied. Failures not caused by something new propagate (retried)."""
        if plan.frontend is None:
            return await self._apply_services(desired, unservable), None
        try:
            everything = desired + list(plan.backends)
            await self._driver.apply(everything, plan.frontend, plan.pems)
            return everything, plan.frontend
        except (HAProxyError, ValueError) as err:
            log.warning("HAProxy refused the programme (%s); trying the Services alone", err)
        applied = await self._apply_services(desired, unservable)
        try:
            everything = applied + list(plan.backends)
            await self._driver.apply(everything, plan.frontend, plan.pems)
            return everything, plan.frontend
        except (HAProxyError, ValueError) as err:
            log.warning("HAProxy refused the Ingress routes (%s); serving Services only", err)
            generations = {ingress_ref(i): i.meta.generation for i in ingresses}
            self._ingress_refused = (self._clock.now(), str(err), generations)
        return applied, None

    async def _apply_services(
        self, desired: list[LbService], unservable: dict[str, Unservable]
    ) -> list[LbService]:
        try:
            await self._driver.apply(desired)
            return desired
        except (HAProxyError, ValueError) as err:
            held = {b.service for b in self._driver.state.backends if b.frontend}
            added = sorted({s.name for s in desired} - held)
            if not added:
                raise
            log.warning("HAProxy refused services %s (%s); isolating the cause", added, err)
        applied = [s for s in desired if s.name not in added]
        await self._driver.apply(applied)
        now = self._clock.now()
        for name in added:
            attempt = applied + [s for s in desired if s.name == name]
            try:
                await self._driver.apply(attempt)
                applied = attempt
            except (HAProxyError, ValueError) as err:
                problem = Unservable(name, "LoadBalancerFailed", f"HAProxy refused it: {err}")
                generation = next(
                    (
                        s.meta.generation
                        for s in self._state.objects("Service")
                        if isinstance(s, Service) and lb_name(s) == name
                    ),
                    0,
                )
                self._refused[name] = _Refusal(now, generation, problem)
                unservable[name] = problem
        return applied

    def _release(self, applied: list[LbService], stopping: list[Pod]) -> None:
        now = self._clock.now()
        drained = self._drained(applied, stopping)
        self._drained_at = {name: self._drained_at.get(name, now) for name in drained}
        released = {
            name for name, since in self._drained_at.items() if now - since >= self._drain_delay
        } | {pod_ref(p) for p in stopping if self.is_released(p)}
        newly = released - self._released
        self._released = released
        if newly:
            nodes = {p.node_name for p in stopping if pod_ref(p) in newly}
            self._on_released(nodes)

    def _drained(self, applied: list[LbService], stopping: list[Pod]) -> set[str]:
        """pods_released, without a walk of every applied endpoint at each pass: the pods
        the applied state serves are listed once per applied state (HAProxy programmed)."""
        if not stopping:
            return set()
        held = self._serving_in
        if held is None or held[0] is not applied:
            held = self._serving_in = (applied, serving_pods(applied))
        return released_of(held[1], stopping)

    def _unchanged(self, obj: Service | Ingress) -> bool:
        """Whether `obj`, read before HAProxy was programmed, is still the stored version.
        A user's write meanwhile must not be overwritten by a status derived from the old
        spec; that write marked the LB dirty, so the next pass sets the status."""
        current = self._state.get(obj.kind, obj.meta.name, obj.meta.namespace)
        return current is not None and current.meta.resource_version == obj.meta.resource_version

    def _set_ingress_status(self, ingresses: list[Ingress], plan: IngressPlan) -> None:
        shown = (self._ingress_ports or IngressPorts("", 0, 0)).shown_address
        for ing in ingresses:
            name = ingress_ref(ing)
            if not self._unchanged(ing):
                continue
            served = plan.served.get(name)
            address = shown if served is not None and plan.frontend is not None else ""
            new, event = ingress_status(
                ing, plan.problems.get(name, ()), address, served or () if address else ()
            )
            if new is not ing:
                self._state.put(new)
            if event is not None:
                self._state.record_event(
                    "Ingress",
                    ing.meta.name,
                    event.reason,
                    event.message,
                    event.type,
                    namespace=ing.meta.namespace,
                )

    def _set_status(
        self, services: list[Service], unservable: dict[str, Unservable], own: dict[str, str]
    ) -> None:
        if not self._state.writable:
            # A follower of several masters: its HAProxy serves the shared state as the
            # leader's does; the services' status is the leader's to write.
            return
        now = self._clock.now()
        for svc in services:
            name = lb_name(svc)
            if not self._unchanged(svc):
                continue
            problem = unservable.get(name)
            new, event = service_status(svc, problem, self._addresses, now, own.get(name, ""))
            if new is not svc:
                self._state.put(new)
            if event is not None:
                self._state.record_event(
                    "Service",
                    svc.meta.name,
                    event.reason,
                    event.message,
                    event.type,
                    namespace=svc.meta.namespace,
                )
