"""Which payload each request carries: a workload with repeats, seeded, so that how often a
request repeats an earlier one (what a response cache can answer) is a property of the workload.

Three workloads, chosen by the scenario's fields (`bench.load.scenarios.base`):
- cycle (no repeat settings): the point's requests go through a fixed list of payloads in turn,
  as every point did before workloads with repeats existed.
- repeat_ratio r: each request after the first repeats, with probability r, the payload of an
  earlier request drawn uniformly (so popular payloads grow more popular); otherwise it carries
  a payload never sent before. With a cache large enough, the hit ratio is r.
- distinct D, zipf_s s: each request draws one of D distinct payloads, the k-th (from 1) with
  probability proportional to k^-s (s = 0: uniformly).

Request ids are drawn in blocks from one generator, so request i's payload is the same however
the driver asks for it. `payload_key` is what makes two requests the same request: the serving
worker's response cache keys on it, and distinct payloads are made distinct by it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.validation import at_least, require

_BLOCK = 1024  # request ids drawn at a time


def payload_key(items: Sequence[Any]) -> bytes:
    """A 16-byte digest of a request's items, canonical: the same items give the same key
    however they travelled (JSON or binary tensors decode to equal arrays), and items of
    another type, dtype or shape never collide by their bytes alone."""
    digest = hashlib.blake2b(digest_size=16)
    _feed(digest, list(items))
    return digest.digest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, str):
        data = value.encode()
        digest.update(b"s%d:" % len(data) + data)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        digest.update(b"b%d:" % len(data) + data)
    elif isinstance(value, (np.ndarray, np.generic)):
        array = np.ascontiguousarray(value)
        little = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        array = array.astype(little, copy=False)
        digest.update(f"a{little.str}{array.shape}:".encode() + array.tobytes())
    elif isinstance(value, (list, tuple)):
        digest.update(b"l%d:" % len(value))
        for item in value:
            _feed(digest, item)
    elif isinstance(value, dict):
        digest.update(b"d%d:" % len(value))
        for name in sorted(value):
            _feed(digest, str(name))
            _feed(digest, value[name])
    elif isinstance(value, (bool, int, float)) or value is None:
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    else:
        raise TypeError(f"cannot key a request item of type {type(value).__name__}")


@dataclass(frozen=True)
class Repeats:
    """The workload's repeat settings, as the scenario gives them (None: not set)."""

    repeat_ratio: float | None = None
    distinct: int | None = None
    zipf_s: float | None = None

    @property
    def any(self) -> bool:
        return self.repeat_ratio is not None or self.distinct is not None

    def validate(self, at: str = "scenario") -> None:
        if self.repeat_ratio is not None:
            require(
                0 <= self.repeat_ratio < 1,
                f"{at}.repeat_ratio",
                f"must be at least 0 and below 1 (the share of requests that repeat an earlier "
                f"payload), or null; got {self.repeat_ratio}",
            )
            require(
                self.distinct is None and self.zipf_s is None,
                f"{at}.repeat_ratio",
                "give repeat_ratio, or distinct (with zipf_s), not both",
            )
        at_least(self.distinct, 1, f"{at}.distinct", nullable=True)
        if self.zipf_s is not None:
            require(
                self.distinct is not None,
                f"{at}.zipf_s",
                "a Zipf popularity needs the pool it draws from: set scenario.distinct too",
            )
            at_least(self.zipf_s, 0, f"{at}.zipf_s", unit=" (0: uniform)")


class PayloadIds:
    """Request index -> payload id, drawn in blocks of a seeded generator (pure: no payloads)."""

    def __init__(self, repeats: Repeats, seed: int) -> None:
        self.repeats = repeats
        self._rng = np.random.default_rng(seed)
        self._ids = np.zeros(0, dtype=np.int64)
        self._fresh = 0  # repeat_ratio: the next payload never sent
        if repeats.distinct is not None:
            ranks = np.arange(1, repeats.distinct + 1, dtype=float)
            weights = ranks ** -(repeats.zipf_s or 0.0)
            self._popularity = weights / weights.sum()

    def __call__(self, count: int) -> np.ndarray:
        """The ids of requests 0 .. count - 1."""
        while len(self._ids) < count:
            self._ids = np.concatenate([self._ids, self._block()])
        return self._ids[:count]

    def at(self, index: int) -> int:
        return int(self(index + 1)[index])

    def _block(self) -> np.ndarray:
        if self.repeats.distinct is not None:
            return self._rng.choice(self.repeats.distinct, size=_BLOCK, p=self._popularity)
        block = np.empty(_BLOCK, dtype=np.int64)
        ratio, earlier = self.repeats.repeat_ratio, len(self._ids)
        for i in range(_BLOCK):
            before = earlier + i
            if before and self._rng.random() < ratio:
                j = int(self._rng.integers(before))
                block[i] = self._ids[j] if j < earlier else block[j - earlier]
            else:
                block[i] = self._fresh
                self._fresh += 1
        return block


def repeated(ids: np.ndarray) -> np.ndarray:
    """Per request: whether an earlier request carried the same payload (what a cache that
    never evicts answers)."""
    _, first = np.unique(ids, return_index=True)
    seen = np.ones(len(ids), dtype=bool)
    seen[first] = False
    return seen


class _Cycle:
    """Request i -> payload i % n: the ids of a list of payloads used in turn."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, count: int) -> np.ndarray:
        return np.arange(count) % self.n

    def at(self, index: int) -> int:
        return index % self.n


class _Each:
    """Request i -> payload i: every request a payload of its own."""

    def __call__(self, count: int) -> np.ndarray:
        return np.arange(count)

    def at(self, index: int) -> int:
        return index


class Payloads:
    """The payload of each request of one load point, made once per payload id and shared by
    every request that repeats it; safe to index from any thread."""

    def __init__(
        self, ids: PayloadIds | _Cycle | _Each, make: Callable[[int], Sequence[Any]]
    ) -> None:
        self._ids = ids
        self._make = make
        self._made: dict[int, Sequence[Any]] = {}
        self._lock = threading.Lock()

    @classmethod
    def cycle(cls, batches: Sequence[Sequence[Any]]) -> Payloads:
        """Request i carries `batches[i % len(batches)]`."""
        if not batches:
            raise ValueError("batches: need at least one batch of samples to send")
        made = list(batches)
        return cls(_Cycle(len(made)), made.__getitem__)

    @classmethod
    def each(cls, make: Callable[[int], Sequence[Any]]) -> Payloads:
        """Request i carries `make(i)`: no two requests the same."""
        return cls(_Each(), make)

    def __getitem__(self, index: int) -> Sequence[Any]:
        with self._lock:
            return self._payload(self._ids.at(index))

    def prepare(self, count: int) -> None:
        """Make the payloads of requests 0 .. count - 1 now, before they are timed."""
        with self._lock:
            for payload_id in np.unique(self._ids(count)):
                self._payload(int(payload_id))

    def ids(self, count: int) -> np.ndarray:
        with self._lock:
            return self._ids(count).copy()

    def _payload(self, payload_id: int) -> Sequence[Any]:
        made = self._made.get(payload_id)
        if made is None:
            made = self._made[payload_id] = self._make(payload_id)
        return made


def distinct_supply(
    samples: Callable[[int, int], list[Any]], batch_size: int, seed: int, salt: int
) -> Callable[[int], list[Any]]:
    """Payload id -> a payload of `batch_size` items no other id of this supply gives (by
    `payload_key`), drawn from `samples(count, seed)` with seeds derived from (`seed`, `salt`,
    id); RuntimeError where the model cannot make one after many tries."""
    keys: dict[bytes, int] = {}
    lock = threading.Lock()

    def make(payload_id: int) -> list[Any]:
        for attempt in range(64):
            state = np.random.SeedSequence([seed, salt, payload_id, attempt]).generate_state(2)
            items = samples(batch_size, int(state[0]) << 32 | int(state[1]))
            key = payload_key(items)
            with lock:
                if keys.setdefault(key, payload_id) == payload_id:
                    return items
        raise RuntimeError(
            f"the model made no new distinct payload in 64 tries after {len(keys)}: its samples "
            "repeat too much for this workload (lower scenario.distinct or scenario.repeat_ratio's "
            "request count, or raise scenario.batch_size)"
        )

    return make
