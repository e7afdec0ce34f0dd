"""The serving worker process: builds its predictor from the config file it is given, then
serves it over HTTP (uvicorn) or gRPC (grpcio) on one address, speaking the Open Inference
Protocol.

    python -m runners.worker --config run.yaml --protocol http --host 127.0.0.1 --port 8000

Runners start it as `python -c ENTRY --config ...` instead (see `ENTRY`), so that it can time
the interpreter's own start apart from the imports. The config is the run's resolved YAML; the
worker calls `bench.models` and `bench.backends` itself, so nothing is pickled across
processes. It listens only once the model is loaded and has run once, so "ready" means "serves
at full speed"; its facts (`GET /v2/bench/worker`) time its start in parts that add up: process
start, imports, model load, first inference. Prometheus metrics are at `GET /metrics` (a gRPC
worker serves them over HTTP on `--metrics-port`) unless `strategy.metrics` is false. With
`--watch-stdin` it stops when its
stdin closes, i.e. when the parent that holds the pipe dies, so a crashed harness leaves no
servers behind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
import time

# The command runners start a worker with: `python -c ENTRY ARGS...`. It reads the clock before
# importing anything of ours: `python -m runners.worker` imports the `runners` package (the
# config machinery, numpy) before any line of this module runs, which would count those imports
# as the process's start.
ENTRY = (
    "import sys, time; t = time.monotonic(); from runners.worker import main; "
    "sys.exit(main(entered_at=t))"
)


def main(argv: list[str] | None = None, entered_at: float | None = None) -> int:
    """Serve until stopped; `entered_at`: `time.monotonic()` when the interpreter began running
    our code (default: now)."""
    if entered_at is None:
        entered_at = time.monotonic()
    args = _arguments(argv)
    if args.watch_stdin:
        threading.Thread(target=_stop_when_stdin_closes, daemon=True).start()
    # Imported once the arguments are read: `--help` and a bad argument answer at once.
    from omegaconf import OmegaConf

    from bench.backends import Predictor
    from bench.monitoring import slo_seconds
    from runners.binding import exposure_warning
    from runners.model_service import ModelService
    from runners.serving import ServingCore, build_from_config

    cfg = OmegaConf.load(args.config)
    # Token-by-token generation is served over HTTP (OpenAI, Triton generate) only.
    generation = OmegaConf.select(cfg, "strategy.generation") if args.protocol == "http" else None
    service = ModelService(
        cfg.model.name,
        ServingCore.from_strategy(cfg.strategy),
        args.protocol,
        args.spawned_at,
        entered_at,
        generation=generation,
    )
    # Prometheus metrics unless the strategy switches them off (`strategy.metrics: false`).
    if OmegaConf.select(cfg, "strategy.metrics", default=True):
        from runners.worker_metrics import WorkerMetrics, identity_of

        identity = identity_of(service.core, cfg.optimization.name)
        service.metrics = WorkerMetrics(cfg.model.name, service.core, slo_seconds(cfg), identity)
        if args.protocol == "http":
            service.metrics_port = args.port

    def build() -> Predictor:
        service.import_backend(cfg.backend.name)  # timed as imports, not as the model's load
        return build_from_config(cfg)

    async def startup() -> None:
        await service.start(build)

    warning = exposure_warning(args.host, f"this worker (port {args.port})")
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr, flush=True)
    serving = (args.host, args.port, args.max_request_bytes)
    if args.protocol == "http":
        from runners.http_app import serve_http

        return 0 if serve_http(service, startup, *serving, args.header_timeout_s) else 3
    from runners.grpc_service import serve_grpc

    asyncio.run(serve_grpc(service, startup, *serving, args.metrics_port))
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m runners.worker", description=__doc__)
    parser.add_argument("--config", required=True, help="the run's resolved config (YAML)")
    parser.add_argument("--protocol", choices=("http", "grpc"), required=True)
    parser.add_argument(
        "--host", default="127.0.0.1", help="where to listen (default: loopback only)"
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=32 * 1024 * 1024,
        help="larger request bodies (gRPC messages) are refused; the server goes on",
    )
    parser.add_argument(
        "--header-timeout-s",
        type=float,
        default=10.0,
        help="HTTP: disconnect a client whose request headers take longer than this",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="gRPC: the HTTP port serving Prometheus metrics at /metrics (default 0: any free "
        "one, named in the worker's facts); an HTTP worker serves them on its own port",
    )
    parser.add_argument(
        "--spawned-at",
        type=float,
        default=None,
        help="the parent's time.monotonic() at spawn, to time this process's start",
    )
    parser.add_argument("--watch-stdin", action="store_true", help="stop when stdin closes")
    args = parser.parse_args(argv)
    if args.spawned_at is None:
        args.spawned_at = time.monotonic()
    return args


def _stop_when_stdin_closes() -> None:
    # os.read on the descriptor, not sys.stdin: a daemon thread blocked inside sys.stdin's
    # buffered reader holds its lock, and the interpreter then aborts at exit.
    while os.read(0, 4096):  # b"" once the parent's end of the pipe is closed
        pass
    os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main())
