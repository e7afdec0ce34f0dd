"""The generation engine: token-by-token decoding on one thread, requests batched three ways.

- `continuous` (iteration-level, as vLLM and TGI do): between two decode steps, waiting
  sequences are prefilled and join the running batch, and finished ones leave it, within
  `max_sequences` in flight and `max_batched_tokens` per step (prefill tokens, padding
  included, plus one per running sequence).
- `static`: a batch is formed of what waits when the engine is free, and runs until its last
  sequence is done; rows that finish early ride along (their compute is wasted, as it is in a
  static batch); nothing joins.
- `none`: one sequence at a time.

Callers on an event loop submit a `GenerationRequest` and iterate its tokens as they come; the
engine hands each step's tokens to that loop in one call. Its counters (steps, batch sizes,
sequences that joined a running batch) are its own account of how it batched.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import torch

from runners.decode_batch import DecodeBatch, Sampling, keep, merge, prefill, step

clock = time.perf_counter


@dataclass(frozen=True)
class GenerationRequest:
    """Token ids in; at most `max_tokens` out. The end-of-text token ends a sequence early
    unless `ignore_eos` (so that every request of a benchmark generates exactly max_tokens)."""

    prompt: tuple[int, ...]
    max_tokens: int
    sampling: Sampling = Sampling()
    ignore_eos: bool = False


@dataclass(frozen=True)
class Finished:
    """How a sequence ended: "length" (max_tokens or the context) or "stop" (end of text),
    its token counts, and its time waiting before its prefill began."""

    reason: str
    prompt_tokens: int
    completion_tokens: int
    queue_s: float


@dataclass(frozen=True)
class Token:
    """One generated token; `finished` is set on a sequence's last."""

    id: int
    finished: Finished | None = None


@dataclass
class _Sequence:
    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue
    limit: int  # max_tokens, cut by the context length
    arrived: float = field(default_factory=clock)
    admitted: float = float("nan")
    generated: int = 0
    done: bool = False
    cancelled: bool = False


class GenerationError(RuntimeError):
    """The model failed while generating a sequence."""


class EngineStopped(RuntimeError):
    """A request to an engine that is stopping."""


class GenerationEngine:
    """`start()`, then `generate(request)` from one event loop; `stop()` ends the thread."""

    def __init__(
        self,
        lm: Any,
        batching: str,
        max_sequences: int,
        max_batched_tokens: int,
        eos_token_id: int | None,
        pad_token_id: int,
        context_length: int,
        seed: int = 0,
    ) -> None:
        self.lm = lm
        self.batching = batching
        self.max_sequences = 1 if batching == "none" else max_sequences
        self.max_batched_tokens = max_batched_tokens
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.context_length = context_length
        self._generator = torch.Generator().manual_seed(seed)
        self._waiting: deque[_Sequence] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._counting = threading.Lock()
        # Counted on the engine's thread; read as a copy (`facts`).
        self.steps = 0
        self.prefills = 0
        self.joined_running = 0  # sequences prefilled while others were mid-generation
        self.step_rows: Counter[int] = Counter()  # rows per decode step -> steps
        self.tokens = 0
        self.finished = 0
        self.abandoned = 0  # sequences whose caller left before their end

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="generate", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def check(self, request: GenerationRequest) -> None:
        """ValueError naming what is wrong with a request this engine could never serve."""
        if not request.prompt:
            raise ValueError("prompt: no tokens")
        if len(request.prompt) >= self.context_length:
            raise ValueError(
                f"prompt: {len(request.prompt)} tokens, the model's context is "
                f"{self.context_length}"
            )
        if len(request.prompt) + self.max_sequences > self.max_batched_tokens:
            raise ValueError(
                f"prompt: {len(request.prompt)} tokens is over what one step may batch "
                f"(strategy.generation.max_batched_tokens={self.max_batched_tokens}, "
                f"less one token per running sequence)"
            )
        if request.max_tokens < 1:
            raise ValueError(f"max_tokens: must be >= 1, got {request.max_tokens}")

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Token]:
        """The request's tokens as they are generated, the last one `finished`. Leaving the
        loop early (a client gone) frees its place in the batch at the next step."""
        self.check(request)
        loop = asyncio.get_running_loop()
        limit = min(request.max_tokens, self.context_length - len(request.prompt))
        sequence = _Sequence(request, loop, asyncio.Queue(), limit)
        with self._wake:
            if self._stopping:
                raise EngineStopped("the generation engine is stopping")
            self._waiting.append(sequence)
            self._wake.notify()
        try:
            while True:
                event = await sequence.events.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if event.finished is not None:
                    return
        finally:
            sequence.cancelled = True

    def reset_counters(self) -> None:
        """Forget what was counted (the warm-up's), between requests."""
        with self._counting:
            self.steps = self.prefills = self.joined_running = self.tokens = 0
            self.finished = self.abandoned = 0
            self.step_rows.clear()

    def facts(self) -> dict[str, Any]:
        """How the engine batched so far."""
        with self._counting:
            rows = dict(self.step_rows)
        return {
            "batching": self.batching,
            "max_sequences": self.max_sequences,
            "max_batched_tokens": self.max_batched_tokens,
            "decode_steps": self.steps,
            "prefills": self.prefills,
            "joined_running_batch": self.joined_running,
            "step_rows": {str(k): v for k, v in sorted(rows.items())},
            "max_step_rows": max(rows, default=0),
            "tokens_generated": self.tokens,
            "sequences_finished": self.finished,
            "sequences_abandoned": self.abandoned,
        }

    # --- the engine's thread --------------------------------------------------------------------

    def _run(self) -> None:
        batch: DecodeBatch | None = None
        rows: list[_Sequence] = []
        while True:
            with self._wake:
                while not self._stopping and not self._waiting and not rows:
                    self._wake.wait()
                if self._stopping:
                    self._fail(rows + list(self._waiting), EngineStopped("the engine stopped"))
                    return
                admitted = self._admit(len(rows)) if self._may_admit(rows) else []
            try:
                if admitted:
                    joined, first = self._prefill(admitted)
                    if rows:
                        self.joined_running += len(admitted)
                    batch = joined if batch is None else merge(batch, joined)
                    rows = rows + admitted
                    self._deliver(admitted, first)
                    batch, rows = self._release(batch, rows)
                if rows:
                    sampling = [row.request.sampling for row in rows]
                    tokens = step(self.lm, batch, sampling, self._generator)
                    with self._counting:
                        self.steps += 1
                        self.step_rows[len(rows)] += 1
                    self._deliver(rows, tokens)
                    batch, rows = self._release(batch, rows)
            except Exception as exc:  # the model failed: these sequences fail, the engine goes on
                failure = GenerationError(f"generation failed: {type(exc).__name__}: {exc}")
                self._fail(list({id(s): s for s in rows + admitted}.values()), failure)
                batch, rows = None, []

    def _may_admit(self, rows: list[_Sequence]) -> bool:
        if self.batching == "continuous":
            return True
        return not rows  # static and none: a new batch only once the last one is done

    def _admit(self, running: int) -> list[_Sequence]:
        """Waiting sequences to prefill now, first come first served, within the limits."""
        admitted: list[_Sequence] = []
        width = 0
        while self._waiting and running + len(admitted) < self.max_sequences:
            candidate = self._waiting[0]
            if candidate.cancelled:
                self._waiting.popleft()
                self.abandoned += 1
                continue
            wider = max(width, len(candidate.request.prompt))
            tokens = wider * (len(admitted) + 1) + running
            if admitted and tokens > self.max_batched_tokens:
                break
            width = wider
            admitted.append(self._waiting.popleft())
        now = clock()
        for sequence in admitted:
            sequence.admitted = now
        return admitted

    def _prefill(self, admitted: list[_Sequence]) -> tuple[DecodeBatch, list[int]]:
        self.prefills += 1
        prompts = [s.request.prompt for s in admitted]
        sampling = [s.request.sampling for s in admitted]
        return prefill(self.lm, prompts, sampling, self._generator, self.pad_token_id)

    def _deliver(self, rows: list[_Sequence], tokens: list[int]) -> None:
        """Count each live row's token, end the rows that are done, and hand the events to
        their loops, one call per loop."""
        handed: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue, Any]]] = {}
        for row, token in zip(rows, tokens, strict=True):
            if row.done:
                continue
            row.generated += 1
            self.tokens += 1
            stop = token == self.eos_token_id and not row.request.ignore_eos
            finished = None
            if stop or row.generated >= row.limit:
                row.done = True
                self.finished += 1
                queue_s = row.admitted - row.arrived
                reason = "stop" if stop else "length"
                finished = Finished(reason, len(row.request.prompt), row.generated, queue_s)
            handed.setdefault(row.loop, []).append((row.events, Token(token, finished)))
        for loop, events in handed.items():
            _hand_over(loop, events)

    def _release(
        self, batch: DecodeBatch | None, rows: list[_Sequence]
    ) -> tuple[DecodeBatch | None, list[_Sequence]]:
        """Continuous: let finished and abandoned rows go. Static: the batch goes once every
        row is done (an abandoned row runs on to the end, as the batch does)."""
        if self.batching == "continuous":
            stay = []
            for i, row in enumerate(rows):
                if row.cancelled and not row.done:
                    row.done = True
                    self.abandoned += 1
                elif not row.done:
                    stay.append(i)
        else:
            stay = list(range(len(rows))) if any(not row.done for row in rows) else []
        if not stay:
            return None, []
        if len(stay) == len(rows):
            return batch, rows
        return keep(batch, stay), [rows[i] for i in stay]

    def _fail(self, sequences: list[_Sequence], failure: Exception) -> None:
        for sequence in sequences:
            if not sequence.done:
                sequence.done = True
                _hand_over(sequence.loop, [(sequence.events, failure)])


def _hand_over(loop: asyncio.AbstractEventLoop, events: list[tuple[asyncio.Queue, Any]]) -> None:
    def put() -> None:
        for queue, event in events:
            queue.put_nowait(event)

    try:
        loop.call_soon_threadsafe(put)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass
