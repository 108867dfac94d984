"""How many bytes of a node's disk a claim of a given request takes.

A size-enforced claim is a file of the request plus ext4's own room (agent/claim_disks.py
allocates it whole when the claim's first pod starts). The master must know that figure
too: it places a pod whose claim is not yet bound only on a node whose claim disk has the
room (master/scheduler/claim_storage.py), and counts the files of claims bound but not yet
in the node's report. One function on both sides, so the two never disagree.
"""

from __future__ import annotations

MIB = 1 << 20

# mke2fs's journal size by filesystem size (e2fsprogs' ext2fs_default_journal_size):
# (filesystem below this many MiB, journal MiB).
_JOURNALS = ((128, 4), (1024, 16), (2048, 32), (16384, 64), (32768, 128), (65536, 256))


def claim_file_bytes(request: int) -> int:
    """The first size of a claim's file: the request plus ext4's own room (inode tables
    1.6%, the journal, a little more), rounded up to whole MiB."""
    journal = next((j for size, j in _JOURNALS if request < size * MIB), 1024) * MIB
    extra = request // 50 + journal + 4 * MIB
    return -(-(request + extra) // MIB) * MIB
