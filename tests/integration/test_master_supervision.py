"""A real master whose controller loop dies exits with status 1 and says why.

Runs `serve` in this process (real SQLite store, real gRPC server on port 0, no
load balancer) with the controller loop made to fail, the way a bug in a
controller would: the master must not live on answering calls while nothing
reconciles.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from master.controllers.manager import ControllerManager
from master.server import MasterConfig, run_master


def test_a_master_whose_controllers_die_exits_non_zero_with_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broken_run(self: ControllerManager) -> None:
        raise RuntimeError("a controller bug")

    monkeypatch.setattr(ControllerManager, "run", broken_run)
    config = MasterConfig(
        listen="127.0.0.1:0", data_dir=tmp_path / "data", lb_enabled=False, insecure=True
    )

    status = run_master(config)

    err = capsys.readouterr().err
    assert status == 1
    assert "the controllers task stopped (RuntimeError: a controller bug)" in err, err
