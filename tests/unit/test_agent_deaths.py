"""A die event the engine's list has not caught up with keeps the worker listing fast."""

from __future__ import annotations

import pytest

from agent.deaths import pending_deaths
from agent.runtime.port import ContainerInfo


def _c(cid: str, state: str) -> ContainerInfo:
    return ContainerInfo(id=cid, name=cid, image="nginx", state=state)


@pytest.mark.parametrize(
    ("observed", "now", "left"),
    [
        ([_c("a", "running")], 10.0, {"a"}),  # the list still lags the event: keep checking
        ([_c("a", "exited")], 10.0, set()),  # the list caught up: the restart is decided
        ([], 10.0, set()),  # gone altogether
        ([_c("a", "running")], 11.0, set()),  # a second of lag at most (then the relist)
        ([_c("a", "restarting")], 10.0, {"a"}),
    ],
)
def test_pending_deaths(observed: list[ContainerInfo], now: float, left: set[str]) -> None:
    assert set(pending_deaths({"a": 11.0}, observed, now)) == left


def test_other_containers_do_not_keep_a_death_pending() -> None:
    observed = [_c("a", "exited"), _c("b", "running")]

    assert pending_deaths({"a": 11.0}, observed, 10.0) == {}
