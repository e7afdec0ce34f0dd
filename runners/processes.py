"""Child processes a runner starts (workers, nginx): spawn with a log file, wait until a probe
says ready, notice the moment one exits on its own, terminate with SIGTERM then SIGKILL. Each
child leads its own process group, so stopping it also stops whatever it started (nginx's
workers, a compiler's helpers)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.load.sut import RunnerError

_PROBE_INTERVAL_S = 0.02


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log: Path
    # Ends the watch `watch_exit` keeps on it (none: nothing to end).
    unwatch: Callable[[], None] = lambda: None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def spawn(
    name: str,
    argv: Sequence[str],
    log: Path,
    env: dict[str, str] | None = None,
    stdin_pipe: bool = False,
) -> Child:
    """Start `argv` with stdout and stderr to `log`; `stdin_pipe` hands it a pipe whose end
    closes when this process dies (a worker started with --watch-stdin then stops)."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return Child(name, process, log)


async def wait_ready(child: Child, probe: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    """Probe until it says ready; RunnerError with the child's log if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        code = child.process.poll()
        if code is not None:
            raise RunnerError(
                f"{child.name} exited with code {code} before it was ready; its log ends:\n"
                f"{child.log_tail()}"
            )
        if await probe():
            return
        if time.monotonic() > deadline:
            raise RunnerError(
                f"{child.name} not ready after {timeout_s:g} s; its log ends:\n{child.log_tail()}"
            )
        await asyncio.sleep(_PROBE_INTERVAL_S)


def exit_text(code: int) -> str:
    """A return code in words: "SIGKILL" for a signal (-9, or 137 = 128 + 9 from a shell or a
    container engine), else "code N"."""
    number = -code if code < 0 else code - 128 if 128 < code < 128 + signal.NSIG else None
    if number is None:
        return f"code {code}"
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"code {code}"
    return name if code < 0 else f"code {code} ({name})"


def watch_exit(child: Child, on_exit: Callable[[Child, int, float], None]) -> None:
    """Call `on_exit(child, return code, time.perf_counter() then)` from the running event loop
    as soon as `child` exits (a pidfd the loop waits on: no polling). `child.unwatch()` ends the
    watch; `terminate` ends it first, since an exit it causes is expected."""
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(child.process.pid)
    watching = True

    def exited() -> None:
        at = time.perf_counter()
        unwatch()
        on_exit(child, child.process.wait(), at)

    def unwatch() -> None:
        nonlocal watching
        if watching:
            watching = False
            loop.remove_reader(pidfd)
            os.close(pidfd)

    loop.add_reader(pidfd, exited)
    child.unwatch = unwatch


async def terminate(children: Sequence[Child], timeout_s: float) -> None:
    """SIGTERM every child's process group, SIGKILL what is left after `timeout_s`, reap all.
    A watched child's exit is expected now: its watch ends first."""
    for child in children:
        child.unwatch()
        _signal_group(child, signal.SIGTERM)
    waits = [asyncio.to_thread(_wait, child, timeout_s) for child in children]
    for child, exited in zip(children, await asyncio.gather(*waits), strict=True):
        if not exited:
            _signal_group(child, signal.SIGKILL)
            await asyncio.to_thread(child.process.wait)
        # The leader is gone; anything it left in its group goes too.
        _signal_group(child, signal.SIGKILL)
        if child.process.stdin is not None:
            child.process.stdin.close()


def _wait(child: Child, timeout_s: float) -> bool:
    try:
        child.process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        return False
    return True


def _signal_group(child: Child, signum: int) -> None:
    try:
        os.killpg(child.process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


def free_port_run(host: str, count: int, attempts: int = 50) -> int:
    """The first of `count` consecutive ports free on `host` (checked by binding them; another
    process may still take one before our servers bind, and their start then fails loudly).

    They are drawn below the kernel's ephemeral range: a port in it can be taken at any moment as
    the local end of an outgoing connection (our own client's, a scraper's), and a server started
    a moment later on it then fails with "address already in use"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    low, high = _listen_range(count)
    for _ in range(attempts):
        first = random.randint(low, high)
        with ExitStack() as stack:
            try:
                for port in range(first, first + count):
                    sock = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
                    sock.bind((host, port))
            except OSError:
                continue
            return first
    raise RunnerError(f"found no {count} consecutive free ports on {host}")


EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _listen_range(count: int) -> tuple[int, int]:
    """Where a run of `count` listening ports may start: from 10000 up to the ephemeral range's
    start (Linux's, else IANA's 49152); above that range where it leaves too little below; any
    unprivileged port where it leaves no room either side."""
    try:
        ephemeral_low, ephemeral_high = (int(v) for v in EPHEMERAL.read_text().split())
    except (OSError, ValueError):
        ephemeral_low, ephemeral_high = 49152, 65535
    if ephemeral_low - count > 10000 + 1000:
        return 10000, ephemeral_low - count
    if 65536 - count - ephemeral_high > 1000:
        return ephemeral_high + 1, 65536 - count
    return 1024, 65536 - count
