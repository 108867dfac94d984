"""A real agent whose acks come late because the master reads its streams late (pure).

The master excuses the fleet's silence by its own read backlog
(master/controllers/read_backlog.py); the agent has no such measure and needs none: its
acks stop coming for as long as the backlog grows, it asks its witnesses past fence_after
(0.8 x lease), and they, read as late as it is, do not hear the master either: it holds its
pods. These tests pin that down at the 5,000-node plan (interval 20 s, lease 22 s: witness
times 7.33x the defaults) with the numbers the apply showed (beats read ~70 s late).

Why no "the master is behind" in the ack: an ack comes only once the master has read a
beat, i.e. exactly when it is not behind for this node; and an agent that stretched its own
fence by a backlog it was told would keep its pods past the moment the master, its backlog
gone, replaces them. The agent keeps fencing by its lease; what decides is whether most of
the cluster hears the master now.
"""

from __future__ import annotations

from agent.fencing import PeerView, peer_hears, witness_times, witness_verdict

LEASE = 22.0
INTERVAL = 20.0
NODES = 5000
LISTED = 32  # the master lists a sample of the peers (master/api/node_servicer.py MAX_PEERS)


def _views(hearing: int) -> list[PeerView]:
    return [PeerView(f"p{i}", True, i < hearing) for i in range(LISTED)]


def test_a_peer_read_late_answers_that_it_does_not_hear_the_master() -> None:
    times = witness_times(LEASE)
    # Asked, the peer sends the master one more beat and waits `probe_wait` for an ack: with
    # its beats read 70 s late none comes, and it answers with the time since its last ack.
    # Even on a steady 70 s pipe (acks at the beats' rate, each 70 s late) that is anywhere
    # in the last interval, and only a share hears_within / interval of the peers say yes.
    assert times.probe_wait < 70.0
    share = times.hears_within / INTERVAL
    assert share < 0.25
    assert (
        peer_hears(True, since_ack=times.hears_within + 0.1, hears_within=times.hears_within)
        is False
    )


def test_the_whole_fleet_read_late_holds_its_pods() -> None:
    # A quarter of the sample hearing (more than the share above): the silent majority holds.
    verdict, why = witness_verdict(NODES, LISTED, _views(hearing=8))
    assert verdict == "hold", why
    # While the backlog grows no ack comes at all: no peer hears.
    assert witness_verdict(NODES, LISTED, _views(hearing=0))[0] == "hold"


def test_a_node_read_later_than_most_of_the_fleet_fences() -> None:
    # Its own stream far behind while most of the sample hears the master: it fences, as a
    # node the master does not hear must (the master's excuse covers the slow tenth of the
    # streams, master/controllers/read_backlog.py, not a stream behind all the others).
    verdict, why = witness_verdict(NODES, LISTED, _views(hearing=24))
    assert verdict == "fence", why
