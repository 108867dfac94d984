"""High availability: several masters on one etcd, one of them the leader.

`leadership.py` decides (pure, fake-clock tested) when a master may act as the
leader; `elector.py` drives it against etcd (lease, campaign, renewals);
`follower.py` keeps a follower's in-memory state equal to etcd's by watching it.
"""
