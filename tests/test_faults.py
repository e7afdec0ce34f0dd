"""Faults injected for real during a run: a worker SIGKILLed, nginx killed, a worker killed by its
memory limit, a server that hangs or answers past the drain timeout, Ctrl-C and SIGTERM. Each
time the broken point is recorded as failed with a reason naming what happened, the sweep goes
on (a signal stops it cleanly), no process is left behind, and the rows written before stay."""

from __future__ import annotations

import http.server
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd
import psutil
import pytest

from bench.load.scenarios import shape_of
from bench.registry import typed
from bench.run import run_benchmark
from runners.processes import EPHEMERAL, free_port_run
from tests.conftest import alive, checkout_env, compose, descendants

TINY = [
    "model=mlp",
    "progress=false",
    "accuracy_samples=0",
    "scenario.warmup_s=0.1",
    "scenario.duration_s=1.5",
]


class _Killer(threading.Thread):
    """Once a replica has served `after` requests of the measured point, SIGKILL the first
    child process whose command line holds `marker`; remembers every descendant it saw."""

    def __init__(self, marker: str, after: int = 30) -> None:
        super().__init__(daemon=True)
        self.marker, self.after = marker, after
        self.seen: set[int] = set()
        self.before: set[int] = set()
        self.killed: int | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set() and self.killed is None:
            children = psutil.Process().children(recursive=True)
            self.seen |= {p.pid for p in children} - self.before
            served = max((_served(p) for p in children), default=0)
            if served >= self.after:
                for process in children:
                    try:
                        if self.marker in " ".join(process.cmdline()):
                            process.kill()
                            self.killed = process.pid
                            break
                    except psutil.NoSuchProcess:
                        continue
            time.sleep(0.05)


def _served(process: psutil.Process) -> int:
    """Predictor calls a worker process made (from our /v2/bench/worker), 0 if not a worker."""
    try:
        argv = process.cmdline()
    except psutil.NoSuchProcess:
        return 0
    if "--watch-stdin" not in argv or "--protocol" not in argv:
        return 0
    port = argv[argv.index("--port") + 1]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/bench/worker", timeout=1) as r:
            return sum(json.load(r)["batch_sizes"].values())
    except (OSError, ValueError, KeyError):
        return 0


def _killed_mid_point(
    overrides: list[str], marker: str, tmp_path: Path
) -> tuple[pd.DataFrame, _Killer]:
    cfg = compose([*TINY, "scenario=concurrency", "scenario.levels=[1,2]", *overrides])
    killer = _Killer(marker)
    killer.before = descendants()  # what the session itself runs (none of the run's)
    killer.start()
    try:
        rows = run_benchmark(cfg, tmp_path)
    finally:
        killer.done.set()
        killer.join()
    assert killer.killed is not None
    return rows, killer


def test_a_worker_killed_mid_point_is_named_in_a_failed_row_and_the_sweep_goes_on(
    tmp_path, cache_dir
):
    rows, killer = _killed_mid_point(
        ["strategy=http", f"cache_dir={cache_dir}"], "--watch-stdin", tmp_path
    )
    broken, after = rows.iloc[0], rows.iloc[1]
    assert broken["status"] == "failed" and not broken["valid"]
    assert broken["error"].startswith("http replica 0 exited with SIGKILL at ")
    assert " requests failed after it" in broken["error"]
    # The point's requests are kept, and the next point ran on a worker started afresh.
    assert len(pd.read_parquet(tmp_path / "requests" / f"{broken['point_id']}.parquet")) > 0
    assert after["status"] == "measured" and after["errors"] == 0
    assert killer.seen and alive(killer.seen) == set() and descendants() == killer.before


def test_nginx_killed_mid_point_is_named_and_the_sweep_goes_on(tmp_path, cache_dir):
    if not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    overrides = ["strategy=http", "strategy.load_balancer=nginx", f"cache_dir={cache_dir}"]
    rows, killer = _killed_mid_point(overrides, "nginx: master", tmp_path)
    broken, after = rows.iloc[0], rows.iloc[1]
    assert broken["status"] == "failed"
    assert broken["error"].startswith("nginx exited with SIGKILL at "), broken["error"]
    assert after["status"] == "measured" and after["errors"] == 0
    assert killer.seen and alive(killer.seen) == set() and descendants() == killer.before


def _cgroup_memory_limit() -> str | None:
    from bench.load.sut import RunnerError
    from runners.isolation import open_sandbox
    from runners.sandbox import Limits

    try:
        sandbox = open_sandbox("cgroup", Limits(memory_mb=512), "probe")
    except RunnerError as exc:
        return str(exc)
    sandbox.close()
    return None


def test_a_worker_killed_by_its_memory_limit_says_so(tmp_path, cache_dir):
    why = _cgroup_memory_limit()
    if why is not None:
        pytest.skip(f"no cgroup memory limit here: {why}")
    cfg = compose(
        [
            *TINY,
            "model=python",
            "model.target=tests.leaky_model:build",
            # Pinned: a thread probe's calls would leak too, and could kill the worker while it
            # starts instead of while it serves.
            "backend.threads=1",
            "strategy=container",
            "strategy.isolation=cgroup",
            "strategy.memory_mb=1200",
            "scenario=concurrency",
            "scenario.levels=[1,2]",
            f"cache_dir={cache_dir}",
        ]
    )
    before = descendants()
    rows = run_benchmark(cfg, tmp_path)
    # Both points ran; a worker the leak took past its limit was killed, and its point says so.
    # (Whether the first point's worker reaches the limit within its 1.6 s depends on how fast
    # the host serves it: on this shared host it sometimes did not.)
    assert len(rows) == 2 and (rows["status"] == "failed").any(), rows["error"].tolist()
    for _, row in rows[rows["status"] == "failed"].iterrows():
        assert "container replica 0 exited with SIGKILL (out of memory at 1200 MB" in row["error"]
        assert row["oom_kills"] >= 1
    assert descendants() == before


# --- a server that stops answering ----------------------------------------------------------------


class _Stub(http.server.ThreadingHTTPServer):
    """A real v2 server on loopback that answers its first `answered` inferences, then hangs
    (`delay_s` None) or answers each after `delay_s`; when the first unanswered request
    arrives, it copies the run folder's results as they stand (`before`)."""

    daemon_threads = True

    def __init__(self, answered: int, delay_s: float | None, results: Path) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.answered, self.delay_s, self.results = answered, delay_s, results
        self.count = 0
        self.before: pd.DataFrame | None = None
        self.release = threading.Event()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _StubHandler(http.server.BaseHTTPRequestHandler):
    server: _Stub

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._reply(200, {"ready": True} if self.path.endswith("ready") else {"extensions": []})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        stub = self.server
        with stub.lock:
            stub.count += 1
            late = stub.count > stub.answered
            if late and stub.before is None:
                stub.before = _rows(stub.results)
        if late:
            if stub.delay_s is None:
                stub.release.wait()
                return
            stub.release.wait(stub.delay_s)  # answers late, or when the test ends
        output = {"name": "output", "datatype": "FP32", "shape": [1, 4], "data": [0.0] * 4}
        self._reply(200, {"model_name": "mlp", "outputs": [output]})

    def _reply(self, status: int, document: dict) -> None:
        body = json.dumps(document).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up on it: that is the fault being tested


# 10 s: far past the point's end plus its 0.5 s drain timeout (2.1 s), so no late answer races it.
@pytest.mark.parametrize("delay_s", [None, 10.0], ids=["hangs", "answers-past-the-drain-timeout"])
def test_a_server_that_stops_answering_fails_its_point_and_the_sweep_goes_on(
    delay_s, tmp_path, cache_dir
):
    overrides = [
        *TINY,
        "strategy=endpoint",
        "scenario=rate_sweep",
        "scenario.rates=[20,30]",
        "scenario.drain_timeout_s=0.5",
        f"cache_dir={cache_dir}",
    ]
    first = typed("scenario", compose(overrides).scenario).points()[0]
    # Its start-up request and the first point's are answered; every later one is not.
    stub = _Stub(1 + len(shape_of(first).offsets), delay_s, tmp_path / "results.parquet")
    server = threading.Thread(target=stub.serve_forever, daemon=True)
    server.start()
    try:
        rows = run_benchmark(compose([*overrides, f"strategy.url={stub.url}"]), tmp_path)
    finally:
        stub.release.set()
        stub.shutdown()
        server.join()
    kept, broken = rows.iloc[0], rows.iloc[1]
    assert kept["status"] == "measured" and kept["errors"] == 0
    assert broken["status"] == "failed"
    assert broken["error"].startswith("no request was answered: ")
    assert "timeout: no response 0.5 s after" in broken["error"]
    # What was written before the fault is as it was (a column's dtype may widen to hold the
    # failed row's empty cells).
    pd.testing.assert_frame_equal(
        stub.before, rows.iloc[[0]].reset_index(drop=True), check_dtype=False
    )


# --- Ctrl-C and SIGTERM ---------------------------------------------------------------------------


def _bench(run_dir: Path, cache_dir: str) -> subprocess.Popen:
    """`python -m bench` with an http worker, three points; SIGINT at its default disposition
    (a background job of a non-interactive shell would ignore it)."""
    argv = [
        sys.executable, "-m", "bench", *TINY, "strategy=http", "scenario.levels=[1,2,4]",
        "report=false", "plan.enabled=false", f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    return subprocess.Popen(
        argv,
        cwd=run_dir.parent,
        env=checkout_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _rows(path: Path) -> pd.DataFrame:
    """The results as they stand while a run writes them (one open handle: see test_results)."""
    if not path.exists():
        return pd.DataFrame()
    with open(path, "rb") as handle:
        return pd.read_parquet(handle)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_sweep_cleanly_and_a_rerun_measures_the_rest(
    signum, tmp_path, cache_dir
):
    run_dir = tmp_path / "run"
    results = run_dir / "results.parquet"
    proc = _bench(run_dir, cache_dir)
    seen: set[int] = set()
    try:
        while len(_rows(results)) < 1 and proc.poll() is None:
            seen |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
            time.sleep(0.05)
        before = _rows(results)
        seen |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, stderr[-2000:]
    assert f"stopped by {signal.Signals(signum).name}" in stderr
    assert "Traceback" not in stderr
    assert seen and alive(seen) == set()
    after = _rows(results)
    measured = after[after["status"] == "measured"]
    pd.testing.assert_frame_equal(measured.iloc[[0]], before.iloc[[0]], check_dtype=False)
    assert len(measured) < 3
    # The same command measures only the rest: the point measured before is kept as it was.
    again = _bench(run_dir, cache_dir)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr[-2000:]
    final = _rows(results)
    assert list(final["status"]) == ["measured"] * 3
    kept = final.set_index("point_id").loc[before["point_id"].iloc[0]]
    assert kept["run_id"] == before["run_id"].iloc[0]


def test_servers_listen_below_the_ephemeral_range_where_outgoing_connections_take_ports():
    # A server's port picked from the ephemeral range can be taken, before it binds, as the local
    # end of one of our own outgoing connections: replica 1 then dies "address already in use".
    low, high = (int(v) for v in EPHEMERAL.read_text().split())
    for count in (1, 3):
        first = free_port_run("127.0.0.1", count)
        assert not (low <= first + count - 1 and first <= high)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", first + count - 1))
