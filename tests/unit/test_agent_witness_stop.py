"""The agent's witness server at SIGTERM (agent/witness.py stop_witness): a peer's question
in flight when the agent stops ends without gRPC's "Exception not handled ...
CancelledError" traceback, as the master's gRPC server's calls do (kernel/rpc_tasks.py).

Each case runs in its own process, since the traceback is printed by asyncio.run's
teardown, after the code under test has returned."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A witness server answering a peer's CheckMaster whose probe (as the session's waits for
# a heartbeat) is cancelled by the stop and whose cleanup ends only when `release` is set,
# the last thing `main` does: the handler ends in the loop's last turn. "old": the server
# stopped as the agent did before (stop(grace=None) alone); "new": with stop_witness.
_STOPPING_WITNESS = textwrap.dedent(
    """
    import asyncio, logging, sys
    import grpc
    from agent.witness import WitnessServicer, serve_witness, stop_witness
    from protos import node_pb2, node_pb2_grpc

    logging.basicConfig()  # as the agent logs: gRPC's own error lines show too
    mode = sys.argv[1]

    async def main():
        asked, release = asyncio.Event(), asyncio.Event()

        async def probe():
            asked.set()
            try:
                await asyncio.Event().wait()
            finally:
                await release.wait()
            return True, 0.0

        servicer = WitnessServicer("node-a", lambda: None)
        servicer.bind(probe)
        server, port = await serve_witness("127.0.0.1", 0, servicer)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = node_pb2_grpc.WitnessServiceStub(channel)
        call = stub.CheckMaster(node_pb2.CheckMasterRequest(nonce=b"n", asker="node-b"))
        await asked.wait()
        if mode == "old":
            await server.stop(grace=None)
        else:
            end = await stop_witness(server, wait=0.5, then=5.0)
            print(end.running, end.cancelled, end.left, flush=True)
        call.cancel()
        release.set()

    asyncio.run(main())
    """
)


def _stop(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _STOPPING_WITNESS, mode],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_peers_question_in_flight_at_the_stop_ends_without_a_traceback() -> None:
    # The hazard, shown with the witness server as the agent stopped it before.
    old = _stop("old")
    assert "Exception not handled" in old.stderr and "CancelledError" in old.stderr
    new = _stop("new")
    assert new.returncode == 0, new.stderr
    # One call's tasks running after the stop; its handler, still in its cleanup after the
    # wait, cancelled (as gRPC cancels a cancelled call's), and nothing left.
    assert new.stdout.split() == ["1", "1", "0"]
    assert "Exception not handled" not in new.stderr and "Traceback" not in new.stderr
