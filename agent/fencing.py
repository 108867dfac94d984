"""When the agent must stop its own pods because it may have lost its lease (pure).

The master makes a node NotReady after `lease_seconds` of silence and then
replaces its pods elsewhere; a partitioned agent that kept running them would
double them (two writers, two leaders...). So the agent fences itself first:
- no heartbeat ack for `fence_after` seconds (default 0.8 x lease, so it stops
  before the master gives up on it) -> fence; except when the last connection
  error was "connection refused": then the master process is down, nothing can
  be replacing our pods, and a restarted master grants a fresh lease;
- the process was frozen (SIGSTOP, a VM pause): its monotonic clock jumped by
  more than the lease between two ticks -> fence at once, before reconnecting.
After fencing, the session starts afresh; the new session's assignment set lifts
the fence (agent/worker.py), once the teardown is under way.

A master that reads its streams late (a big apply: beats read ~70 s after they were
sent) sends acks late too; the master does not blame the nodes for it (it judges a node
with an open stream by its lease plus its own read backlog,
master/controllers/read_backlog.py). The agent is not told the backlog and does not
stretch its fence by one: an ack comes only once the master has read a beat, and a fence
stretched by a backlog the master no longer has would keep pods the master replaces. Its
acks stop, it asks its witnesses (below), and they, read as late, do not hear the master
either: it holds its pods. A node whose stream is read later than most of the cluster's
fences, as the master may replace its pods (tests/unit/test_agent_fencing_backlog.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kernel.limits import WITNESS_SAMPLE_MIN

FENCE_FRACTION_OF_LEASE = 0.8


@dataclass(frozen=True, slots=True)
class FencePolicy:
    enabled: bool = True
    # Explicit --fence-after; None: FENCE_FRACTION_OF_LEASE x the lease the master gave.
    fence_after: float | None = None


@dataclass(frozen=True, slots=True)
class FenceVerdict:
    reason: str
    # Fenced because the process was frozen (rather than for missing acks).
    frozen: bool = False


def fence_after(policy: FencePolicy, lease_seconds: float | None) -> float | None:
    """Seconds of silence after which the agent fences (None: no rule applies yet)."""
    if not policy.enabled:
        return None
    if policy.fence_after is not None:
        return policy.fence_after
    return FENCE_FRACTION_OF_LEASE * lease_seconds if lease_seconds else None


def fence_decision(
    policy: FencePolicy,
    lease_seconds: float | None,
    since_ack: float,
    last_error_refused: bool,
    tick_gap: float,
) -> FenceVerdict | None:
    """Whether to fence now. `lease_seconds` is None until the first registration."""
    if not policy.enabled:
        return None
    if lease_seconds and tick_gap > lease_seconds:
        return FenceVerdict(
            f"the agent was frozen for {tick_gap:.1f}s, longer than its {lease_seconds:g}s lease",
            frozen=True,
        )
    limit = fence_after(policy, lease_seconds)
    if limit is None or since_ack <= limit or last_error_refused:
        return None
    return FenceVerdict(f"no heartbeat ack from the master for {since_ack:.1f}s")


# -- witnesses: is it me, or is it the master? ------------------------------------------------
#
# An agent that stops hearing the master cannot tell by itself whether it is cut off
# (the master will replace its pods: fence) or the master stalled (every node hears
# nothing; nothing is replaced: keep the pods). So it asks its peers, over a call that
# does not involve the master, whether they hear it. Each asked peer sends the master an
# extra heartbeat and answers after the ack (or PROBE_WAIT without one), so its answer
# says whether it hears the master *now*, not a heartbeat interval ago.
#
# The rule (own view x peers' views x elapsed), applied only once the silence is longer
# than fence_after and the last error was not "connection refused":
#
# | cluster (size n)  | peers' answers                                   | verdict          |
# |-------------------|--------------------------------------------------|------------------|
# | size unknown (0)  | -                                                | fence (as before)|
# | one node (n = 1)  | -                                                | hold: never fence|
# | n > 1             | me + silent peers > n / 2                        | hold: the master |
# |                   |                                                  | stalled          |
# | n > 1             | me + silent + unanswered peers <= n / 2          | fence: I am cut  |
# |                   |                                                  | off              |
# | n > 1             | otherwise (too few answers to tell)              | wait, ask again, |
# |                   |                                                  | fence at the     |
# |                   |                                                  | wait deadline    |
#
# "Silent" is an answer, signed by the peer, saying it holds no session or heard nothing
# for HEARS_WITHIN seconds. A listed peer that does not answer in time, or not credibly,
# is unknown: it is not evidence that the master is up (a cold connection of a freshly
# joined agent timed out while every node heard nothing, and the agent fenced with "0
# peers answered"), nor that it is down. Nodes the master does not list (agents without
# a witness) count as hearing the master. While the answers cannot tell, the agent keeps
# asking until the wait deadline (WAIT_FRACTION_OF_LEASE of the lease, still before the
# master gives up on it) and then fences: a node cut off from everything fences a few
# tenths of a second later than it did, and still before its pods are replaced.
# Answers count only if asked once the silence passed fence_after - ASK_LEAD (so they
# speak of the same silence); in a large cluster the master lists a sample of the peers,
# and the share of silent ones in the sample stands for the cluster's. While holding, the
# agent keeps asking every ASK_EVERY seconds and fences as soon as the answers no longer
# show a silent majority for FLIP_ROUNDS rounds (the master came back, but not for this
# node, or the peers can no longer be reached). A peer whose answer misses ASK_TIMEOUT
# is judged by its last answer in time while that one is fresh (agent/state/lease.py
# VIEW_MAX_AGE): on a busy machine answers come late now and then; a peer that stays
# unreachable still fences the node about fence_after after its last answer.

#
# These times are for the default 3 s lease (DEFAULT_LEASE); a cluster run with a longer
# lease (`pinnace master --lease-seconds`, for slow or busy machines) gets them in
# proportion (witness_times), never shorter. Why: an answer is the peer's probe of the
# master (PROBE_WAIT) plus two processes' turns on the CPU, and at the default times that
# leaves 0.15 s; on a machine at load 30 most answers missed it, and a node fenced
# through a master stall for answers that came late. A longer lease was no help while
# these stayed fixed; now it buys the witnesses the same share of patience.

DEFAULT_LEASE = 3.0
ASK_LEAD = 0.5
ASK_EVERY = 0.5
ASK_TIMEOUT = 0.45
PROBE_WAIT = 0.3
HEARS_WITHIN = 0.6
# While holding, answers older than this (by when they were asked) no longer count.
VIEW_MAX_AGE = 1.5
# Before holding, a round's answers may take until this long before the wait deadline
# (one tick of the fence watcher: an answer in by then is decided on at the next tick, and
# a "hold" verdict stands whenever that tick comes).
ASK_MARGIN = 0.2
# With at least this many peers listed and fewer than the cluster's size, the list is a
# sample: its silent share stands for the cluster's.
SAMPLE_MIN = WITNESS_SAMPLE_MIN
# Undecided answers keep the pods until this share of the lease has passed without an ack.
WAIT_FRACTION_OF_LEASE = 0.95

Verdict = Literal["hold", "fence", "wait"]


@dataclass(frozen=True, slots=True)
class PeerView:
    """One peer's answer: reachable (a valid, signed answer came back in time) and, if so,
    whether it hears the master."""

    name: str
    reachable: bool
    hears_master: bool = True


@dataclass(frozen=True, slots=True)
class WitnessTimes:
    """The witness timings (seconds) for one lease; see the table's notes above."""

    ask_lead: float
    ask_every: float
    ask_timeout: float
    probe_wait: float
    hears_within: float
    view_max_age: float


def witness_times(lease_seconds: float | None) -> WitnessTimes:
    """The witness timings for `lease_seconds` (None: not registered yet): the defaults
    at DEFAULT_LEASE or less, in proportion to a longer lease."""
    scale = max(1.0, (lease_seconds or DEFAULT_LEASE) / DEFAULT_LEASE)
    return WitnessTimes(
        ASK_LEAD * scale,
        ASK_EVERY * scale,
        ASK_TIMEOUT * scale,
        PROBE_WAIT * scale,
        HEARS_WITHIN * scale,
        VIEW_MAX_AGE * scale,
    )


def peer_hears(connected: bool, since_ack: float, hears_within: float = HEARS_WITHIN) -> bool:
    """What a peer's answer says: it holds a session and heard the master just now."""
    return connected and 0 <= since_ack < hears_within


def wait_deadline(policy: FencePolicy, lease_seconds: float | None) -> float | None:
    """Seconds of silence after which undecided answers no longer keep the pods."""
    limit = fence_after(policy, lease_seconds)
    if limit is None or not lease_seconds:
        return limit
    return max(limit, WAIT_FRACTION_OF_LEASE * lease_seconds)


def witness_verdict(
    cluster_size: int, listed_peers: int, views: list[PeerView]
) -> tuple[Verdict, str]:
    """(verdict, why): hold the pods when the master, not this node, is the problem; fence
    when it is this node; wait when the answers cannot tell yet (see the table above)."""
    if cluster_size <= 0:
        return "fence", "the master never said how large the cluster is"
    if cluster_size == 1:
        return "hold", "this is the only node of the cluster: nothing can replace its pods"
    answered = {v.name: v for v in views if v.reachable}
    silent = 1 + sum(1 for v in answered.values() if not v.hears_master)
    sampled = listed_peers >= SAMPLE_MIN and listed_peers + 1 < cluster_size
    total = listed_peers + 1 if sampled else cluster_size
    unknown = max(0, listed_peers - len(answered))
    said = (
        f"{silent} of {total} nodes hear nothing from it "
        f"({len(answered)} of {listed_peers} peers answered)"
    )
    if 2 * silent > total:
        return "hold", said
    if 2 * (silent + unknown) <= total:
        return "fence", said
    return "wait", said
