"""When may this master act as the leader? A pure state machine over a monotonic clock.

Leadership is an etcd key attached to a lease (TTL `ttl`, renewed every
`renew_every`). etcd deletes the key — and another master may win it — no
sooner than `ttl` after the last renewal etcd accepted, which was itself sent
no sooner than we sent it. So a leader whose last successful renewal was sent
at `t` holds the key at least until `t + ttl`. It acts only until
`t + ttl - margin` (the margin, one renewal interval, covers a write already on
its way), so it has stopped before another master can start: there are never
two leaders acting. Every store write of a leader is also conditional on its
key (EtcdStore's guard), so a write that races the deadline anyway is refused
by etcd, not applied.

The driver (elector.py) calls `won`, `renewed`, `lost`; everyone else asks
`acting(now)` and `deadline`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["follower", "leader"]


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """Kubernetes uses 15 s / 10 s / 2 s; pinnace fails over faster: 2 s lease, 0.5 s renewals."""

    ttl: float = 2.0
    renew_every: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.renew_every * 2 < self.ttl:
            raise ValueError(
                f"lease {self.ttl:g}s must be more than twice the renewal interval "
                f"{self.renew_every:g}s"
            )

    @property
    def margin(self) -> float:
        return self.renew_every


class Leadership:
    """The leader's right to act, from the send times of its successful renewals."""

    def __init__(self, timing: LeaseTiming) -> None:
        self.timing = timing
        self.role: Role = "follower"
        self._valid_until = 0.0
        self.term = 0  # counts elections won by this master, to tell one reign from the next

    def won(self, sent_at: float) -> None:
        """The campaign sent at `sent_at` (with a lease granted or renewed then) won the key."""
        self.role = "leader"
        self.term += 1
        self._valid_until = sent_at + self.timing.ttl - self.timing.margin

    def renewed(self, sent_at: float) -> None:
        """A renewal sent at `sent_at` was confirmed by etcd (TTL > 0)."""
        if self.role == "leader":
            self._valid_until = max(
                self._valid_until, sent_at + self.timing.ttl - self.timing.margin
            )

    def lost(self) -> None:
        """The key is gone or another's, or a renewal said the lease expired."""
        self.role = "follower"
        self._valid_until = 0.0

    def acting(self, now: float) -> bool:
        return self.role == "leader" and now < self._valid_until

    @property
    def deadline(self) -> float:
        """Monotonic time at which a leader without a newer renewal must stop acting."""
        return self._valid_until


# etcd reports a lease's TTL in whole seconds, truncated: 0 means "less than one left".
TTL_UNIT_S = 1.0


class LeaseRunOut:
    """When may a follower revoke the leader's lease itself, instead of waiting up to
    500 ms more for etcd's expiry sweep? Once etcd itself has let it run out.

    A follower asks etcd for the lease's TTL every tick. The first answer of 0
    (received at `t`) says less than one second was left when etcd answered, so the
    lease has run out at etcd by `t + 1 s` — unless it was renewed since, which a
    later answer of >= 1 shows (and which resets this). etcd never renews a lease
    that has run out, so revoking it then only does etcd's pending sweep early. The
    driver looks once more just before revoking, which leaves a window of one
    round trip; a leader renewing in it after a second of silence loses its key,
    and the guard on its writes (its key's create_revision) refuses them.
    """

    def __init__(self) -> None:
        self.lease = 0
        self._below_one_since: float | None = None

    def observe(self, lease: int, ttl: int, received_at: float) -> None:
        if lease != self.lease:
            self.lease, self._below_one_since = lease, None
        if ttl >= 1:
            self._below_one_since = None
        elif self._below_one_since is None:
            self._below_one_since = received_at

    def run_out(self, now: float) -> bool:
        """Whether etcd has certainly let the observed lease run out by `now`."""
        since = self._below_one_since
        return since is not None and now >= since + TTL_UNIT_S
