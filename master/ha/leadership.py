"""When may this master act as the leader? A pure state machine over a monotonic clock.

Leadership is an etcd key attached to a lease (TTL `ttl`, 1 s by default,
renewed every `renew_every`, a quarter of it). etcd deletes the key — and
another master may win it — no sooner than `ttl` after the last renewal etcd
accepted, which was itself sent no sooner than we sent it. So a leader whose
last successful renewal was sent at `t` holds the key at least until `t + ttl`.
It acts only until `t + ttl - margin` (the margin, one renewal interval, covers
a write already on its way and the tick that notices), so it has stopped before
another master can start: there are never two leaders acting. Every store write
of a leader is also conditional on its key (EtcdStore's guard), so a write that
races the deadline anyway is refused by etcd, not applied. A renewal etcd still
accepts after that deadline proves the lease alive and restores the right to act.

The driver (elector.py) calls `won`, `renewed`, `lost`; everyone else asks
`acting(now)` and `deadline`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["follower", "leader"]

# Renewals per lease. A leader acts until 3/4 of a lease after sending its last confirmed
# renewal: one renewal lost or late (a busy loop, a slow etcd) costs nothing, two in a row
# end its reign before etcd can hand the key to another.
RENEWALS_PER_LEASE = 4


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """Kubernetes uses 15 s / 10 s / 2 s; pinnace fails over within 2 s: a 1 s lease renewed
    every 0.25 s. A dead leader's key goes at most `ttl` after its last renewal plus etcd's
    expiry sweep (every 500 ms): about 1.6 s at worst, where a 2 s lease gave 2.5 s. A live
    leader has three renewals' worth of slack (0.75 s) before it must stop acting.

    etcd's TTLs are whole seconds and at least 1.5 x its election timeout: a 1 s lease needs
    etcd run with `--heartbeat-interval 50 --election-timeout 500` (the elector warns when
    etcd grants more than it asked, and failover is then that much slower)."""

    ttl: float = 1.0
    renew_every: float = 0.25

    def __post_init__(self) -> None:
        if not 0 < self.renew_every * 2 < self.ttl:
            raise ValueError(
                f"lease {self.ttl:g}s must be more than twice the renewal interval "
                f"{self.renew_every:g}s"
            )

    @staticmethod
    def of(ttl: float) -> LeaseTiming:
        """A lease of `ttl` seconds renewed every quarter of it (`--leader-lease`)."""
        return LeaseTiming(ttl=ttl, renew_every=ttl / RENEWALS_PER_LEASE)

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

    def lapsed(self, now: float) -> bool:
        """Leading by its key, but with no renewal confirmed for two leases: the lease has
        most likely expired in etcd (it lives a lease past the last renewal etcd received,
        longer only when etcd changed Raft leaders) and another master may lead. A leader
        cut off from etcd stays paused, since only etcd can tell it the lease expired; its
        agents' sessions must not wait with it (master/ha/role.py `settling`)."""
        return self.role == "leader" and now >= self._valid_until + self.timing.margin + (
            self.timing.ttl
        )

    @property
    def deadline(self) -> float:
        """Monotonic time at which a leader without a newer renewal must stop acting."""
        return self._valid_until
