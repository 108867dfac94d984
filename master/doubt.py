"""Doubt: a single master's way back after a write etcd answered neither way (pure).

A transaction etcd neither confirmed nor refused in time (it lost its quorum, a
connection died mid-call) may still be committed, or may be gone: the client
heard "may or may not have been saved" and EtcdStore is `in_doubt`. Until the
master knows, its memory may differ from etcd both ways (a change that landed
is missing, because only an acknowledged commit is published; a change it queued
and holds is not in etcd). With --leader-elect the elector pauses the leader
for it (master/ha/elector.py); a single master on etcd runs this instead
(master/settler.py executes the steps):

    writing  --store in doubt-->  "pause"   close the write gate, stop the controllers
    settling --retry due----->    "settle"  a write of its own after the unknown one:
                                            once etcd commits it, the unknown one's
                                            fate is final (EtcdStore.settle)
    reloading --retry due---->    "reload"  memory := etcd, listeners told (replace_all)
    resuming ---------------->    "resume"  open the gate, start the controllers

A step that fails (etcd still unreachable) is tried again after a backoff
(RETRY_MIN_S doubling to RETRY_MAX_S); the store found in doubt again before the
resume (a write that slipped in after the settle) goes back to settling. While
paused, writes are refused with one retryable sentence (`refusal`), after
waiting up to WRITE_SETTLE_S for the resume (`settling`), as a leader's are.
"""

from __future__ import annotations

from typing import Literal

Phase = Literal["writing", "settling", "reloading", "resuming"]
Step = Literal["wait", "pause", "settle", "reload", "resume"]

# The first retry of a failed settle or reload, doubling up to the last.
RETRY_MIN_S = 0.1
RETRY_MAX_S = 2.0


class Doubt:
    """Where a single master stands after an unknown write; see the module docstring."""

    def __init__(self) -> None:
        self.phase: Phase = "writing"
        self._retry_at = 0.0
        self._failures = 0
        self._since = 0.0
        self._last_error = ""

    def next(self, now: float, in_doubt: bool) -> Step:
        """The step to take now, given whether the store is in doubt."""
        if self.phase == "writing":
            if not in_doubt:
                return "wait"
            self._enter("settling", now)
            self._since = now
            return "pause"
        if in_doubt and self.phase != "settling":
            self._enter("settling", now)  # a write after the settle was not confirmed either
        if self.phase == "resuming":
            return "resume"
        if now < self._retry_at:
            return "wait"
        return "settle" if self.phase == "settling" else "reload"

    def settled(self, now: float) -> None:
        """The settle write was committed: what etcd holds now is final."""
        if self.phase == "settling":
            self._enter("reloading", now)

    def reloaded(self, now: float) -> None:
        """Memory was made equal to etcd."""
        if self.phase == "reloading":
            self._enter("resuming", now)

    def resumed(self) -> None:
        self.phase = "writing"

    def failed(self, now: float, error: str) -> None:
        """A settle or reload failed: try again after a backoff."""
        self._last_error = error
        self._retry_at = now + min(RETRY_MAX_S, RETRY_MIN_S * 2.0**self._failures)
        self._failures += 1

    @property
    def paused(self) -> bool:
        return self.phase != "writing"

    def refusal(self, now: float) -> str | None:
        """None while writing, else why a write is refused (retryable)."""
        if self.phase == "writing":
            return None
        why = f" (last: {self._last_error})" if self._last_error else ""
        return (
            f"etcd did not confirm a write {now - self._since:.1f}s ago, so this master takes "
            f"no writes until it has found out what etcd holds and reloaded it{why}; "
            f"retry in a moment"
        )

    def _enter(self, phase: Phase, now: float) -> None:
        self.phase = phase
        self._retry_at = now
        self._failures = 0
        if phase == "settling":
            self._last_error = ""
