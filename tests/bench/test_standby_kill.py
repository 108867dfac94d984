"""Which engine event is a `--kill-at standby-made` trial's standby start
(tests/bench/standby_kill.py), and the flag's checks (tests/bench/recovery.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.runtime.port import LABEL_STANDBY
from tests.bench.recovery import parse_args
from tests.bench.standby_kill import StandbyStart, standby_started

NODES = ("it-a", "it-b")


def event(
    pod: str = "ck-x1",
    node: str = "it-a",
    action: str = "start",
    standby: bool = True,
    at: int = 1_700_000_000_250_000_000,
) -> dict[str, Any]:
    attributes = {"pinnace.pod": pod, "pinnace.node": node, "name": f"pinnace-{node}-{pod}"}
    if standby:
        attributes[LABEL_STANDBY] = "true"
    return {
        "Type": "container",
        "Action": action,
        "Actor": {"ID": "h" * 64, "Attributes": attributes},
        "timeNano": at,
    }


def test_a_standby_start_of_a_new_pod_on_our_nodes_is_the_trials() -> None:
    found = standby_started(event(), NODES, "ck-", done=())
    assert isinstance(found, StandbyStart)
    assert (found.pod, found.node, found.holder) == ("ck-x1", "it-a", "h" * 64)
    assert found.at == pytest.approx(1_700_000_000.25, abs=1e-6)


@pytest.mark.parametrize(
    "other",
    [
        event(pod="ck-x1"),  # killed already: a later standby of it is no new trial's
        event(node="it-other"),  # another cluster's node on the same engine (--compare)
        event(pod="mp-x1"),  # another deployment's pod
        event(standby=False),  # the pod's own container, or a holder that is no standby
        event(action="create"),  # made, not started yet
    ],
)
def test_other_events_are_not(other: dict[str, Any]) -> None:
    assert standby_started(other, NODES, "ck-", done={"ck-x1"}) is None


def test_standby_made_needs_agents_that_make_standbys() -> None:
    base = ["--only", "container-kill", "--kill-at", "standby-made"]
    assert parse_args(base).kill_at == "standby-made"
    assert parse_args(["--only", "container-kill"]).kill_at == "settled"
    with pytest.raises(SystemExit):
        parse_args([*base, "--agent-arg=--no-standby-sandbox"])


def test_standby_made_checks_the_compared_tree_too(tmp_path: Path) -> None:
    old = tmp_path / "old"
    (old / "agent").mkdir(parents=True)
    (old / "agent" / "worker.py").write_text("")
    (old / "agent" / "main.py").write_text('"--standby-sandbox", action="store_true"')
    args = ["--only", "container-kill", "--kill-at", "standby-made", "--compare", str(old)]
    with pytest.raises(SystemExit):
        parse_args(args)
    (old / "agent" / "main.py").write_text(
        '"--standby-sandbox", action=argparse.BooleanOptionalAction, default=True'
    )
    assert parse_args(args).compare == str(old)
