"""The tests' remove_container (tests/support.py) never sends a removal beside one in
progress: answered 409 "already in progress" (an agent's removal, carried on by the engine
after the agent was killed), it waits for that removal's end, then removes what is left."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest
import requests

from tests.support import remove_container


def _api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError(explanation, response=response, explanation=explanation)


class Engine:
    """A container another removal is under way for, ending after `removing_for` inspects
    (`then`: "gone", or "exited": that removal failed and the container is still there)."""

    def __init__(self, removing_for: int, then: str = "gone") -> None:
        self.removing_for = removing_for
        self.then = then
        self.inspects = 0
        self.removals = 0
        self.api = self

    def _status(self) -> str:
        if self.inspects <= self.removing_for:
            return "removing"
        return self.then

    def remove_container(self, container_id: str, force: bool) -> None:
        self.removals += 1
        status = self._status()
        if status == "removing":
            raise _api_error(409, f"removal of container {container_id} is already in progress")
        if status == "gone":
            raise docker.errors.NotFound("no such container")
        self.then = "gone"  # removed by this call

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        self.inspects += 1
        status = self._status()
        if status == "gone":
            raise docker.errors.NotFound("no such container")
        return {"State": {"Status": status}}


def test_a_removal_in_progress_is_waited_for_not_sent_again() -> None:
    engine = Engine(removing_for=5)
    remove_container(engine, "c1")
    # One removal answered 409, then the wait, then one that finds it gone.
    assert engine.removals == 2
    assert engine.inspects == 6


def test_what_a_failed_removal_in_progress_left_is_removed_after_it() -> None:
    engine = Engine(removing_for=3, then="exited")
    remove_container(engine, "c1")
    assert engine.removals == 2 and engine.then == "gone"


def test_a_removal_that_never_ends_is_named_at_the_deadline() -> None:
    engine = Engine(removing_for=10**9)
    with pytest.raises(AssertionError, match="still 'Removal In Progress'"):
        remove_container(engine, "c1", within=0.3)
    assert engine.removals == 1
