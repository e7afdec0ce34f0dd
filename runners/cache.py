"""The response cache in front of the model (`strategy.cache`): outputs kept by the key of the
request's inputs (`bench.load.payloads.payload_key`, a canonical hash of the decoded items), the
least recently used evicted first once the cache holds `max_entries` responses or `max_mb` MB of
them (the outputs' bytes and the 16-byte keys).

An LRU from `cachetools` (its `LRUCache` with `getsizeof` bounds bytes as well as entries, as a
hand-rolled OrderedDict would, but tested by its users for years). One lock: the serving core
looks up from the event loop and from the threads the direct runner issues from. Two requests
for the same inputs in flight at once both miss (no coalescing), as in Triton's response cache.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from cachetools import LRUCache

from bench.load.payloads import payload_key

_KEY_BYTES = 16


def _entry_bytes(output: np.ndarray) -> int:
    return output.nbytes + _KEY_BYTES


class _Lru(LRUCache):
    """cachetools' LRU, counting the bytes its entries hold as they come and go."""

    def __init__(self, maxsize: int, getsizeof=None) -> None:
        super().__init__(maxsize, getsizeof)
        self.held_bytes = 0

    def __setitem__(self, key: bytes, value: np.ndarray) -> None:
        old = super().get(key)
        super().__setitem__(key, value)  # ValueError, and nothing kept, if larger than the cache
        self.held_bytes += _entry_bytes(value) - (0 if old is None else _entry_bytes(old))

    def __delitem__(self, key: bytes) -> None:
        value = super().__getitem__(key)
        super().__delitem__(key)
        self.held_bytes -= _entry_bytes(value)


class ResponseCache:
    """`get(key)` -> the cached output or None; `put(key, output)` after a miss; `key(items)`
    is the request's key."""

    def __init__(self, max_entries: int | None = None, max_mb: float | None = None) -> None:
        if (max_entries is None) == (max_mb is None):
            raise ValueError("bound the cache by max_entries or by max_mb (one of them)")
        if max_mb is not None:
            self._lru = _Lru(maxsize=max(1, round(max_mb * 1e6)), getsizeof=_entry_bytes)
        else:
            self._lru = _Lru(maxsize=max_entries)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @classmethod
    def from_config(cls, cache: Any) -> ResponseCache | None:
        """The cache a `strategy.cache` config asks for; None when it asks for none."""
        if cache is None or (cache.max_entries is None and cache.max_mb is None):
            return None
        return cls(cache.max_entries, cache.max_mb)

    @staticmethod
    def key(items: Sequence[Any]) -> bytes:
        return payload_key(items)

    def get(self, key: bytes) -> np.ndarray | None:
        with self._lock:
            output = self._lru.get(key)
            if output is None:
                self.misses += 1
            else:
                self.hits += 1
            return output

    def put(self, key: bytes, output: np.ndarray) -> None:
        """Keep a copy of `output` (read-only: every hit shares it) unless it alone is larger
        than the cache."""
        output = np.array(output, copy=True)
        output.flags.writeable = False
        with self._lock:
            try:
                self._lru[key] = output
            except ValueError:
                pass

    @property
    def entries(self) -> int:
        with self._lock:
            return len(self._lru)

    @property
    def bytes(self) -> int:
        """What the entries hold: outputs and keys."""
        with self._lock:
            return self._lru.held_bytes
