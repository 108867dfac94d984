"""Witnesses (issue 19): two agents in-process ask each other about the master.

Real gRPC on 127.0.0.1 between the agents' witness servers and to an in-test
master; the agents' time is a FakeClock the test advances. A master that stalls
for everyone leaves every pod running (and the agents say so once it is back);
a node the master no longer hears, while its peer does, fences at the usual time.
Also: answers are signed, and a forged or foreign answer is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.attest import AttestError, sign_view, verify_answer
from agent.credentials import NodeCredentials, key_pem
from agent.fencing import FENCE_FRACTION_OF_LEASE, FencePolicy
from agent.model import NodeInfo, PeerAddress, Resources
from agent.outbox import StatusOutbox
from agent.runtime.fake_runtime import FakeEngine, FakeRuntime
from agent.session import FENCE_TICK, Session
from agent.witness import WitnessClient, WitnessListenError, WitnessServicer, serve_witness
from agent.worker import Worker
from kernel.clock import FakeClock
from protos import node_pb2 as pb
from tests.unit.test_agent_fake_master import FakeMaster, web_assignment
from tests.unit.test_agent_session import IMAGE, in_flight, run_paced, until

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# Fake seconds per real pause (3 ms), as in test_agent_session. Fake time does not race the
# real messages: it stands still while a heartbeat, an ack, or a witness question or its
# answer is on the wire (Pace.waiting), and runs while the asked peer probes the master
# (its probe waits on the fake clock). Before, it ran on while answers travelled: a round
# trip slowed to 100 ms by a busy machine looked like 0.7 s to the agents (seen at load
# 30-40), and slowing fake time down (5 ms per pause) only made the probe's fake wait take
# longer in real time, against the asker's real gRPC deadline.
STEP = 0.02


class Pace:
    """What the agents' fake time waits for (`waiting`): their heartbeats and the master's
    acks on the wire (test_agent_session.in_flight), and witness questions and answers on
    the wire: agents asking their peers (each agent here has one peer) while fewer peers
    are answering (probing the master, on the fake clock)."""

    def __init__(self, master: FakeMaster) -> None:
        self.master = master
        self.workers: dict[str, Worker] = {}
        self.answering = 0

    def probe(
        self, probe: Callable[[], Awaitable[tuple[bool, float]]]
    ) -> Callable[[], Awaitable[tuple[bool, float]]]:
        """`probe` (a session's probe_master), counted in `answering` while it runs."""

        async def counted() -> tuple[bool, float]:
            self.answering += 1
            try:
                return await probe()
            finally:
                self.answering -= 1

        return counted

    def waiting(self) -> str:
        if pending := in_flight(self.master, self.workers):
            return pending
        asked = sum(len(w.state.lease.peers) for w in self.workers.values() if w.state.lease.asking)
        if asked > self.answering:
            return f"witness answers ({asked} asked, {self.answering} answering)"
        return ""


async def until_paced(
    clock: FakeClock,
    pace: Pace,
    predicate: Callable[[], Any],
    what: str,
    fake_timeout: float = 10.0,
) -> Any:
    """tests.unit.test_agent_session.until, fake time waiting for what `pace` names."""
    return await until(clock, predicate, what, fake_timeout, STEP, pace.waiting)


@contextlib.asynccontextmanager
async def cluster(
    clock: FakeClock, master: FakeMaster, *names: str
) -> AsyncIterator[tuple[dict[str, Worker], Pace]]:
    """Agents with witness servers on 127.0.0.1:0, each told about the others; `master`
    must stamp its acks with `clock`."""
    address = master.address
    pace = Pace(master)
    workers = pace.workers
    servers, tasks, ports = [], [], {}
    for name in names:
        engine = FakeEngine(clock=clock.now)
        engine.present_images.add(IMAGE)
        outbox = StatusOutbox()
        worker = Worker(
            FakeRuntime(name, engine),
            "127.0.0.1",
            clock,
            outbox.update,
            0.2,
            fence=FencePolicy(),
            validate=True,
        )
        servicer = WitnessServicer(name, lambda: None)
        server, port = await serve_witness("127.0.0.1", 0, servicer)
        info = NodeInfo(
            name, "127.0.0.1", Resources(2000, 2**30), Resources(1900, 2**29), witness_port=port
        )
        session = Session(
            address, info, worker, outbox, clock, witness=WitnessClient(name, lambda: None)
        )
        servicer.bind(pace.probe(session.probe_master))
        servers.append(server)
        ports[name] = port
        workers[name] = worker
        tasks += [asyncio.create_task(worker.run()), asyncio.create_task(session.run())]
    try:
        for name in names:
            await until_paced(clock, pace, lambda n=name: master.connected(n), f"{name}'s session")  # type: ignore[misc]
        for name in names:
            peers = [
                pb.Peer(name=n, address="127.0.0.1", witness_port=ports[n])
                for n in names
                if n != name
            ]
            master.send_peers(name, peers, len(names))
            master.assign(name, web_assignment(f"pod-{name}", IMAGE))
        # Both the peer lists and the assignments in: nothing the master sent is still on
        # the wire when the test starts (Pace stops fake time for heartbeats and acks only,
        # and a message arriving later renews the lease: an assignment read one step after
        # a test's cut made the fence look a step late).
        await until_paced(
            clock,
            pace,
            lambda: all(
                w.state.lease.cluster_size and w.state.pods.desired for w in workers.values()
            ),
            "peer lists and assignments",
        )
        yield workers, pace
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in servers:
            await server.stop(grace=None)


def test_a_master_stall_fences_no_one_and_each_agent_says_so_when_it_is_back() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        master = FakeMaster(heartbeat=1.0, lease=3.0, clock=clock)
        await master.start()
        try:
            async with cluster(clock, master, "n1", "n2") as (workers, pace):
                await until_paced(
                    clock,
                    pace,
                    lambda: all(w.state.pods.observed_once for w in workers.values()),
                    "lists",
                )
                master.hung.set()  # SIGSTOP: no acks for anyone
                await run_paced(clock, 6.0, pace.waiting, STEP)
                assert not any(w.fenced for w in workers.values())
                assert all(w.state.lease.holding for w in workers.values())
                master.hung.clear()
                await until_paced(clock, pace, lambda: len(master.notices) >= 2, "notices", 10.0)
                assert not any(w.fenced for w in workers.values())
        finally:
            await master.stop()
        assert {n for n, _ in master.notices} == {"n1", "n2"}
        assert all(notice.reason == "MasterUnreachable" for _, notice in master.notices)

    asyncio.run(scenario())


def test_the_node_the_master_does_not_hear_fences_and_its_peer_does_not() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        master = FakeMaster(heartbeat=1.0, lease=3.0, clock=clock)
        await master.start()
        try:
            async with cluster(clock, master, "n1", "n2") as (workers, pace):
                master.deaf.add("n1")  # n1's acks are lost; n2 still hears the master
                cut_at = clock.monotonic()
                n1 = workers["n1"].state
                heard = [n1.lease.last_heard]

                def fenced() -> str:
                    if not n1.pods.fence_reason:
                        heard[0] = n1.lease.last_heard  # (a fence restarts it)
                    return n1.pods.fence_reason

                reason = await until_paced(clock, pace, fenced, "n1 fenced", 5.0)
                silence = clock.monotonic() - heard[0]
                await run_paced(clock, 3.0, pace.waiting, STEP)
                assert not workers["n2"].fenced
        finally:
            await master.stop()
        # Nothing heard since the cut (an ack on the wire then came in before fake time
        # moved on).
        assert heard[0] <= cut_at + 1e-6
        # fence_after (0.8 x the 3 s lease) of silence, seen by the fence watcher's first
        # tick past it. The watcher sleeps FENCE_TICK on the fake clock, which wakes a sleep
        # at the first step that reaches its deadline as floats compare: ten steps of 0.02
        # from 1000.24 sum to 1000.4399999999999, short of 1000.44, and the eleventh wakes
        # it. So the ticks are up to FENCE_TICK + STEP apart (1e-6: float sums).
        limit = FENCE_FRACTION_OF_LEASE * 3.0
        assert limit < silence <= limit + FENCE_TICK + STEP + 1e-6
        assert "1 of 2 nodes hear nothing" in reason

    asyncio.run(scenario())


# -- signed answers -----------------------------------------------------------------------------


def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _node(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], name: str) -> NodeCredentials:
    from cryptography.hazmat.primitives import serialization

    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(hours=1))
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return NodeCredentials(key_pem(key), cert.public_bytes(pem), ca_cert.public_bytes(pem))


def test_a_signed_answer_from_the_asked_peer_is_believed() -> None:
    ca = _ca()
    n2 = _node(ca, "n2")
    answer = sign_view(pb.WitnessView(nonce=b"abc", node_name="n2", connected=False), n2)

    view = verify_answer(answer, b"abc", "n2", n2.ca_pem, NOW)

    assert view.node_name == "n2" and not view.connected


@pytest.mark.parametrize(
    "forgery", ["other CA", "other node", "stale nonce", "unsigned", "tampered"]
)
def test_a_forged_answer_is_refused(forgery: str) -> None:
    ca = _ca()
    n2, n3 = _node(ca, "n2"), _node(ca, "n3")
    foreign = _node(_ca(), "n2")
    signer = {"other CA": foreign, "other node": n3}.get(forgery, n2)
    name = "n3" if forgery == "other node" else "n2"
    answer = sign_view(pb.WitnessView(nonce=b"abc", node_name=name, connected=False), signer)
    if forgery == "unsigned":
        answer = sign_view(pb.WitnessView(nonce=b"abc", node_name="n2"), None)
    if forgery == "tampered":
        answer.view = pb.WitnessView(
            nonce=b"abc", node_name="n2", connected=True
        ).SerializeToString()
    nonce = b"xyz" if forgery == "stale nonce" else b"abc"

    with pytest.raises(AttestError):
        verify_answer(answer, nonce, "n2", n2.ca_pem, NOW)


def test_a_witness_port_that_is_taken_is_one_clear_error() -> None:
    async def scenario() -> str:
        first, port = await serve_witness("127.0.0.1", 0, WitnessServicer("n1", lambda: None))
        try:
            with pytest.raises(WitnessListenError) as caught:
                await serve_witness("127.0.0.1", port, WitnessServicer("n2", lambda: None))
        finally:
            await first.stop(grace=None)
        return str(caught.value)

    message = asyncio.run(scenario())
    assert message.startswith("--witness-port ") and "cannot listen on 127.0.0.1:" in message


def test_warm_connects_to_the_listed_peers_before_any_question() -> None:
    async def scenario() -> tuple[str, int]:
        server, port = await serve_witness("127.0.0.1", 0, WitnessServicer("n2", lambda: None))
        client = WitnessClient("n1", lambda: None)
        try:
            await client.warm((PeerAddress("n2", "127.0.0.1", port),))
            channel = client._channels[f"127.0.0.1:{port}"]
            async with asyncio.timeout(5):
                while channel.get_state() != grpc.ChannelConnectivity.READY:
                    await channel.wait_for_state_change(channel.get_state())
            ready = channel.get_state().name
            await client.warm(())  # no longer listed: closed and forgotten
            return ready, len(client._channels)
        finally:
            await client.close()
            await server.stop(None)

    assert asyncio.run(scenario()) == ("READY", 0)
