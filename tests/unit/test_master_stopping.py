"""The master's stop (master/stopping.py): slow stages named, and a stop that hangs
dumps every thread's stack and exits instead of waiting for a SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from master.stopping import StopTimes


def test_the_slow_stages_of_a_stop_are_named_in_one_sentence() -> None:
    now = [0.0]
    times = StopTimes(lambda: now[0])
    with times.stage("controllers"):
        now[0] += 0.2
    with times.stage("gRPC server and sessions"):
        now[0] += 12.5
    with times.stage("last flush"):
        now[0] += 1.0
    assert times.slow() == "stopping took 13.7s: gRPC server and sessions 12.5s, last flush 1.0s"
    quick = StopTimes(lambda: now[0])
    with quick.stage("controllers"):
        pass
    assert quick.slow() == ""


def test_a_stop_that_hangs_dumps_the_stacks_and_exits_non_zero() -> None:
    # A process whose stop hangs in a synchronous call (no event loop turn will come).
    code = textwrap.dedent(
        """
        import time
        from master.stopping import arm_stop_deadline

        def stuck_in_a_stage():
            time.sleep(60)

        arm_stop_deadline(0.5)
        stuck_in_a_stage()
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "stuck_in_a_stage" in done.stderr  # the stack says where it hung


# A gRPC server whose stream handler ends in the loop's last turn before `main` returns (its
# cleanup waits for `release`, set as the last thing `main` does), as a StreamSession ending
# with thousands of others did when the master stopped; `finish_rpc_tasks` after the stop,
# or not (the old stop). `stuck`: the handler's cleanup never ends by itself.
_STOPPING_SERVER = textwrap.dedent(
    """
    import asyncio, logging, sys
    import grpc
    from kernel.rpc_tasks import finish_rpc_tasks
    from protos import node_pb2, node_pb2_grpc

    logging.basicConfig()  # as the master logs: gRPC's own error lines show too
    mode = sys.argv[1]

    class Servicer(node_pb2_grpc.NodeServiceServicer):
        def __init__(self):
            self.started, self.release = asyncio.Event(), asyncio.Event()

        async def StreamSession(self, request_iterator, context):
            self.started.set()
            try:
                await asyncio.Event().wait()
                yield node_pb2.MasterMessage()
            finally:
                await (asyncio.Event() if mode == "stuck" else self.release).wait()

    async def main():
        server = grpc.aio.server()
        servicer = Servicer()
        node_pb2_grpc.add_NodeServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

        async def requests():
            yield node_pb2.AgentMessage()
            await asyncio.Event().wait()

        call = node_pb2_grpc.NodeServiceStub(channel).StreamSession(requests())
        await servicer.started.wait()
        await server.stop(grace=0.1)
        if mode != "old":
            servicer.release.set()
            end = await finish_rpc_tasks(wait=0.5, then=5.0)
            print(end.running, end.cancelled, end.left, flush=True)
        call.cancel()
        servicer.release.set()

    asyncio.run(main())
    """
)


def _stop(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _STOPPING_SERVER, mode],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_stream_handler_ending_as_the_loop_closes_is_let_finish() -> None:
    # Without the wait, asyncio.run's teardown cancels gRPC's rpc_task in the turn between
    # its handler's end and its own: the traceback the master printed at SIGTERM (gRPC 1.85).
    old = _stop("old")
    assert "Exception not handled" in old.stderr and "CancelledError" in old.stderr
    new = _stop("new")
    assert new.returncode == 0, new.stderr
    assert new.stdout.split() == ["1", "0", "0"]  # one call's tasks, ended by themselves
    assert "Exception not handled" not in new.stderr and "Traceback" not in new.stderr


def test_a_handler_still_running_after_the_wait_is_cancelled_and_ends_quietly() -> None:
    stuck = _stop("stuck")
    assert stuck.returncode == 0, stuck.stderr
    assert stuck.stdout.split() == ["1", "1", "0"]  # its handler cancelled, then ended
    assert "Exception not handled" not in stuck.stderr and "Traceback" not in stuck.stderr
