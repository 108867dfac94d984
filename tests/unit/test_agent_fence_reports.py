"""What a fenced agent tells the master, and when it may re-register (FakeRuntime, no sleeps).

Pods a fence stopped are reported with reason Fenced (removed once their
containers are gone), also after the master's fresh assignment set dropped them,
so the master can record why they stopped; a pod the master assigns here again
is reported normally. A re-registration after a fence waits for the teardown.
"""

from __future__ import annotations

import asyncio

from tests.unit.test_agent_worker import Harness, web_pod


def test_fenced_pods_are_reported_fenced_until_gone_and_after_the_fence_lifts() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a", epoch=4), web_pod("b", epoch=5))
        await h.step()

        h.worker.fence("no heartbeat ack from the master for 2.5s")
        await h.worker.iterate()
        stopping = h.reports["a"]
        await h.worker.settle()
        await h.worker.iterate()

        assert (stopping.reason, stopping.removed, stopping.epoch) == ("Fenced", False, 4)
        assert "no heartbeat ack" in stopping.message
        assert h.containers() == []
        gone = h.reports["b"]
        assert (gone.reason, gone.removed, gone.epoch, gone.ready) == ("Fenced", True, 5, False)

        # the master replaced "a" and "b" elsewhere: its new set no longer has them
        h.assign(revision=9)
        await h.step()
        assert not h.worker.fenced
        assert {n: (r.reason, r.removed) for n, r in h.reports.items()} == {
            "a": ("Fenced", True),
            "b": ("Fenced", True),
        }

    asyncio.run(scenario())


def test_a_fenced_pod_assigned_here_again_runs_and_is_reported_normally() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"))
        await h.step()
        h.worker.fence("frozen")
        await h.step()

        h.assign(web_pod("a"), revision=2)
        await h.step(2)

        assert [c.pod for c in h.containers()] == ["a"]
        assert (h.reports["a"].reason, h.reports["a"].phase) == ("", "Running")

    asyncio.run(scenario())


def test_re_registration_after_a_fence_waits_for_the_teardown() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"))
        await h.step()
        assert await h.worker.wait_fence_cleared(timeout=1.0)  # not fenced: no wait

        h.worker.fence("frozen")
        waiting = asyncio.create_task(h.worker.wait_fence_cleared(timeout=1.0))
        while not h.clock.sleepers:
            await asyncio.sleep(0)
        h.clock.advance(1.0)  # the containers still run: the wait times out (fake time)
        assert not await waiting
        await h.step()

        assert await h.worker.wait_fence_cleared(timeout=1.0)

    asyncio.run(scenario())
