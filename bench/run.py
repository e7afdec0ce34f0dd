"""One benchmark run: every load point of one configuration, measured in turn and written as
each finishes. The pipeline's stages meet here; none of them reaches back into another."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from bench.backends.accuracy import compare, eval_samples, not_measured, reference_outputs
from bench.backends.artifact import Artifact, expected_artifact
from bench.backends.core_sharing import model_core_sharing
from bench.config import generative, validate
from bench.host_support import check_host
from bench.load import Driver, LoadPoint, judge, point_id, summarize
from bench.load.generation import TokenCounter, load_tokenizer, prompt_supply
from bench.load.generation_stats import summarize_generation
from bench.load.log import Measurement
from bench.load.payloads import PayloadIds, Payloads, distinct_supply, repeated
from bench.load.scenarios import ScenarioConfig, scenario_of
from bench.load.sut import Fault, Request, Runner
from bench.metrics import GpuSampler, ResourceSampler, host_calibration, host_fingerprint
from bench.metrics.scrape import ServerScrape
from bench.models import ModelBundle, build_model
from bench.models.text_corpus import SENTENCES
from bench.registry import implementation, typed
from bench.results import SCHEMA_VERSION, ResultsStore, tier_of

# Distinct request payloads cycled through by a load point (cheap to make, enough to vary).
_PAYLOADS = 64
# Fields that change how a run is shown or planned, or name where it ran, not what it measures.
_NOT_MEASURED = ("progress", "report", "plan", "catalog", "node")


class Interrupted(Exception):
    """The run was stopped by a signal (Ctrl-C: SIGINT, or SIGTERM): the runner's processes
    are stopped, the points measured before are kept, the point in flight is recorded failed."""

    def __init__(self, signum: int) -> None:
        self.signal = signal.Signals(signum)
        super().__init__(f"stopped by {self.signal.name}")


def run_benchmark(cfg: DictConfig, run_dir: str | Path) -> pd.DataFrame:
    """Measure every load point of `cfg` not yet measured in `run_dir`; return all its rows.
    Before measuring: ConfigError for a config this host cannot run (`check_host`),
    UnwritableRunFolder where the results could not be kept. Interrupted on SIGINT/SIGTERM."""
    validate(cfg)
    check_host(cfg)
    store = ResultsStore(run_dir)
    store.check_writable()
    scenario = typed("scenario", cfg.scenario)
    key = _measurement_key(cfg, scenario.point_lists)
    history = _history(store, key)
    if scenario.next_point(history) is not None:
        asyncio.run(_until_signalled(_measure(cfg, scenario, key, history, store)))
    return store.rows()


def points_left(cfg: DictConfig, run_dir: str | Path) -> bool:
    """Whether `run_benchmark(cfg, run_dir)` would measure anything: False once every point of
    `cfg` is stored in `run_dir` as measured (wherever it was measured)."""
    scenario = typed("scenario", cfg.scenario)
    key = _measurement_key(cfg, scenario.point_lists)
    return scenario.next_point(_history(ResultsStore(run_dir), key)) is not None


def _history(store: ResultsStore, key: dict) -> list[dict]:
    """Points measured before under this very configuration: kept, not measured again; failed
    ones are tried again."""
    rows = store.rows()
    if rows.empty:
        return []
    same = (rows["config"] == json.dumps(key, sort_keys=True)) & (rows["status"] == "measured")
    return rows[same].to_dict("records")


async def _until_signalled(work) -> None:
    """Await `work`; on SIGINT or SIGTERM cancel it (its `finally`s stop what it started) and
    raise Interrupted. A signal this process ignores (SIGINT in a background job) stays ignored;
    a second signal does not cut the clean-up short."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    caught: list[int] = []

    def stop(signum: int) -> None:
        if not caught:
            task.cancel()
        caught.append(signum)

    watched = [
        signum
        for signum in (signal.SIGINT, signal.SIGTERM)
        if threading.current_thread() is threading.main_thread()
        and signal.getsignal(signum) is not signal.SIG_IGN
    ]
    for signum in watched:
        loop.add_signal_handler(signum, stop, signum)
    try:
        await work
    except asyncio.CancelledError:
        if caught:
            raise Interrupted(caught[0]) from None
        raise
    finally:
        for signum in watched:
            loop.remove_signal_handler(signum)


def _measurement_key(cfg: DictConfig, point_lists: tuple[str, ...]) -> dict:
    """The config as it decides what a point measures: presentation left out, and the
    scenario's lists of points too (each level or rate is a point of its own), so that adding
    one to a finished run measures only the new point."""
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    key = {k: v for k, v in config.items() if k not in _NOT_MEASURED}
    for name in point_lists:
        key["scenario"].pop(name, None)
    return key


def _base_row(cfg: DictConfig, key: dict, run_id: str, point: LoadPoint, calibration: dict) -> dict:
    row = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "point_id": point_id(key, point),
        "point": json.dumps(point.as_dict(), sort_keys=True),
        "status": "measured",
        "error": "",
        "label": point.label,
        "model": _model_name(cfg),
        "backend": cfg.backend.name,
        "optimization": cfg.optimization.name,
        "strategy": cfg.strategy.name,
        "scenario": cfg.scenario.name,
        "batch_size": point.batch_size,
        "concurrency": point.concurrency if point.concurrency is not None else np.nan,
        "target_qps": point.target_qps if point.target_qps is not None else np.nan,
        "tag": cfg.tag,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": json.dumps(key, sort_keys=True),
    }
    for group in ("model", "backend", "optimization", "strategy", "scenario"):
        for name, value in key[group].items():
            row[f"{group}.{name}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
    row.update(host_fingerprint())
    # Which machine measured: the host's name, or the cluster node a launcher names (several
    # nodes can share one host name).
    row["node"] = cfg.node or row["host_name"]
    row.update(calibration)
    row["tier"] = tier_of(row, cfg.tier)
    return row


def _model_name(cfg: DictConfig) -> str:
    """What the rows call the model: the one the harness builds, or the one a generative
    server the user runs serves (`strategy.model_name`)."""
    if _served_elsewhere(cfg):
        return cfg.strategy.model_name
    return cfg.model.name


def _served_elsewhere(cfg: DictConfig) -> bool:
    """A generative server the user runs: the harness builds no model, the server has its own."""
    return generative(cfg) and not typed("strategy", cfg.strategy).serves_here


def _token_counter(cfg: DictConfig, bundle: ModelBundle | None) -> TokenCounter | None:
    """What prompts are counted and cut with, for a generative run (None for any other): the
    tokenizer `strategy.openai.tokenizer` names, else the model's own where the harness
    builds one that has it, else words."""
    if not generative(cfg):
        return None
    path = OmegaConf.select(cfg, "strategy.openai.tokenizer")
    if path:
        return load_tokenizer(path)
    if bundle is not None and bundle.tokenizer is not None:
        return TokenCounter(bundle.tokenizer(), cfg.model.name)
    return TokenCounter()


def _failed(row: dict, error: str) -> dict:
    return {
        **row,
        "status": "failed",
        "error": error,
        "valid": False,
        "invalid_reasons": f"failed: {error}",
        "recommendation": "fix the error above and run again; the other points are kept",
    }


async def _measure(
    cfg: DictConfig, scenario: ScenarioConfig, key: dict, history: list[dict], store: ResultsStore
) -> None:
    """Measure points until the scenario has none left; `history` grows with each row. A runner
    that cannot start fails the points left; one with a fault (a serving process that exited)
    fails the point it broke, and is started afresh for the next."""
    run_id = f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    # Before anything else runs (cached per host after the first time): each row carries the
    # calibration of the host that measured it, which the planner scales from.
    calibration = host_calibration(cfg.cache_dir, cfg.calibration_s)
    bundle = None if _served_elsewhere(cfg) else build_model(cfg.model)
    counter = _token_counter(cfg, bundle)
    expected = _expected(cfg, bundle)
    # Each row names the artifact the harness expected; the worker's report of what it loaded
    # joins it (`model_sha256`), and a point where they differ fails.
    calibration = {**calibration, "model_sha256_expected": expected.sha256 if expected else ""}
    runner: Runner | None = None
    accuracy: dict = {}
    restarts = 0
    try:
        while (point := scenario.next_point(history)) is not None:
            if runner is None:
                runner, accuracy, error = await _started(cfg, bundle, expected, restarts > 0)
                if runner is None:
                    # Static scenarios record each of their points as failed; a search its next.
                    while (point := scenario.next_point(history)) is not None:
                        row = _failed(_base_row(cfg, key, run_id, point, calibration), error)
                        store.append(row)
                        history.append(row)
                    return
                if not restarts:
                    # Once, with the runner idle: it settled the predictor's threads.
                    served = runner.facts.predictor
                    threads = int(served.get("predictor_threads") or 0)
                    size = int(served.get("predictor_model_bytes") or 0)
                    calibration.update(
                        await asyncio.to_thread(model_core_sharing, cfg, threads, size)
                    )
            runner.begin_point()
            row = {**_base_row(cfg, key, run_id, point, calibration), **accuracy}
            try:
                measured = await _measure_point(cfg, scenario, runner, bundle, counter, point, row)
            except asyncio.CancelledError:
                store.append(_failed(row, "interrupted: the run was stopped while it ran"))
                raise
            # Read after the point: some facts (batch sizes, throttling, cold starts) accumulate
            # while it runs.
            row.update(runner.facts.as_row())
            row["client_cpu_ms_per_request"] = client_cpu_ms_per_request(row)
            if mismatch := integrity_error(runner.facts.predictor, expected):
                row.update(_failed(row, mismatch))
            if faults := runner.faults():
                row.update(_failed(row, _fault_text(faults, measured, row["error"])))
                restarts += 1
                await runner.stop()  # stopped twice if a signal cuts this short: that is safe
                runner = None
            elif measured is not None and not measured[0].log.ok.any():
                row.update(_failed(row, _unanswered_text(measured[0].log.errors)))
            store.append(row, measured[0].log.columns() if measured else None)
            history.append(row)
    finally:
        if runner is not None:
            await runner.stop()


def _expected(cfg: DictConfig, bundle: ModelBundle | None) -> Artifact | None:
    """The artifact the workers should serve, computed here; None where it cannot be (the
    runner's start then says why, as it always has), or where the server is not ours."""
    if bundle is None:
        return None
    try:
        return expected_artifact(bundle, cfg.backend, cfg.optimization, cfg.cache_dir)
    except Exception:
        return None


def integrity_error(predictor: dict, expected: Artifact | None) -> str:
    """Why the model a runner serves is not the one expected ("" where it is, or where the
    server does not say what it loaded: a foreign endpoint)."""
    served = predictor.get("model_sha256") or ""
    if expected is None or not served or served == expected.sha256:
        return ""
    return (
        f"model integrity: the worker loaded model_sha256 {served[:16]}... "
        f"({predictor.get('model_artifact') or 'artifact not named'}), but the harness expected "
        f"{expected.sha256[:16]}... ({expected.name}) from the same config: the artifact "
        "changed between the two reads, or the worker builds another model (unseeded weights, "
        "other files or packages); fix that and run again"
    )


async def _started(
    cfg: DictConfig, bundle: ModelBundle | None, expected: Artifact | None, again: bool
) -> tuple[Runner | None, dict, str]:
    """A started runner and what its accuracy check found; (None, {}, why) where either
    failed, or where it serves another model than `expected` (`again`: a restart after a
    fault)."""
    what = "runner failed to start" + (" again after a fault" if again else "")
    try:
        runner: Runner = implementation("strategy", cfg.strategy, "runner")(cfg)
        await runner.start()
    except Exception as exc:
        return None, {}, f"{what}: {type(exc).__name__}: {exc}"
    if mismatch := integrity_error(runner.facts.predictor, expected):
        # Measured, it would be a wrong model's figures, under this model's name.
        await runner.stop()
        return None, {}, mismatch
    try:
        return runner, await _accuracy(runner, bundle, cfg), ""
    except Exception as exc:
        await runner.stop()
        return None, {}, f"the accuracy check failed: {type(exc).__name__}: {exc}"
    except BaseException:
        await runner.stop()
        raise


def _fault_text(faults: list[Fault], measured: tuple[Measurement, float] | None, error: str) -> str:
    """What broke the point: each fault, when (seconds into the point), and how many requests
    failed after the first; `error` is what stopped the point, where something did."""
    if measured is None:
        return "; ".join(filter(None, [*(f.what for f in faults), error]))
    measurement, began = measured
    log, first = measurement.log.columns(), faults[0].at
    failed = ~log["ok"] & ~(log["done"] < first)  # failed after it, or never answered
    said = [
        f"{f.what} {f'at {f.at - began:.1f} s' if f.at >= began else 'before the point began'}"
        for f in faults
    ]
    return f"{'; '.join(said)}; {int(failed.sum())} of {len(log['ok'])} requests failed after it"


def client_cpu_ms_per_request(row: dict) -> float:
    """The CPU the harness's own process spent per request answered, where the model is served
    by other processes (over http or grpc): then that process is only the driver and the client,
    and a request's latency holds at most this much of the client's own work, which a leaner
    client (perf_analyzer's C++) would not spend. NaN in-process, where that CPU is the model's."""
    qps = row.get("achieved_qps", np.nan)
    if row.get("protocol", "none") == "none" or not qps > 0:
        return np.nan
    return 1e3 * row.get("harness_cpu_cores_used", np.nan) / qps


def _unanswered_text(errors: dict[str, int]) -> str:
    """Why a point where no request was answered failed: its most frequent errors."""
    ranked = sorted(errors.items(), key=lambda item: -item[1])
    listed = "; ".join(f"{count} x {message}" for message, count in ranked[:3])
    return f"no request was answered: {listed or 'none was sent'}"


async def _measure_point(
    cfg: DictConfig,
    sc: ScenarioConfig,
    runner: Runner,
    bundle: ModelBundle | None,
    counter: TokenCounter | None,
    point: LoadPoint,
    row: dict,
) -> tuple[Measurement, float] | None:
    """Fill `row` for one point; return its measurement and when the point began (driver's
    clock), or None if the point failed (then `row` says why, and the sweep goes on)."""
    payloads = _payloads(sc, bundle, point, counter)
    bar = _ProgressBar(point, enabled=cfg.progress)
    driver = Driver(runner, payloads, sc.drain_timeout_s, on_progress=bar)
    resources, gpu = ResourceSampler(cfg.sample_interval_s), GpuSampler(cfg.sample_interval_s)
    source = runner.metrics_source()
    server = ServerScrape(source.urls, source.model) if source else ServerScrape((), "")
    await server.begin()
    resources.start()
    gpu.start()
    began = time.perf_counter()
    try:
        measurement = await driver.run(point)
        await server.end()
    except Exception as exc:
        row.update(_failed(row, f"{type(exc).__name__}: {exc}"))
        return None
    finally:
        resources.stop()
        gpu.stop()
        bar.close()
    stats = summarize(
        measurement,
        sc.stability_windows,
        sc.late_send_ms / 1e3,
        point.batch_size,
        sc.confidence,
        sc.window_length_s(),
    )
    stats.update(_workload_repeats(payloads, measurement))
    if counter is not None:
        stats.update(summarize_generation(measurement, sc.slo_ttft_ms, sc.slo_tpot_ms))
        stats["input_tokens_counted_by"] = counter.counted_by
    verdict = judge({**stats, **row}, sc, cfg.accuracy_floor, kind=point.scenario)
    row.update(stats)
    # The measured window on the driver's clock (the request log's): a comparison of two runs
    # reads exactly the requests these figures were computed from.
    row["window_start_s"], row["window_end_s"] = measurement.window_start, measurement.window_end
    row.update(verdict.as_row())
    row["errors_seen"] = json.dumps(measurement.log.errors)
    row.update(resources.summary(measurement.window_start, measurement.window_end))
    row.update(gpu.summary(measurement.window_start, measurement.window_end))
    row.update(server.summary(measurement.log.columns()))
    return measurement, began


def _payloads(
    sc: ScenarioConfig, bundle: ModelBundle | None, point: LoadPoint, counter: TokenCounter | None
) -> Payloads:
    """What the point's requests carry: `_PAYLOADS` payloads in turn, or the workload with
    repeats the scenario sets, its distinct payloads the point's own (seeded by the payload
    seed and the point), so that a cache never answers one point with another's. A generative
    run's requests each carry a prompt of their own (or repeat one, as the workload says)
    drawn from the text corpus at the scenario's lengths."""
    if counter is not None:
        salt = int(point_id({}, point), 16) % 2**32
        prompts = prompt_supply(SENTENCES, counter, sc.lengths, point.payload_seed, salt)
        if sc.repeats.any:
            return Payloads(PayloadIds(sc.repeats, point.payload_seed), prompts)
        return Payloads.each(prompts)
    if not sc.repeats.any:
        return Payloads.cycle(
            [
                bundle.samples(point.batch_size, point.payload_seed * 1000 + i)
                for i in range(_PAYLOADS)
            ]
        )
    salt = int(point_id({}, point), 16) % 2**32
    make = distinct_supply(bundle.distinct_source(), point.batch_size, point.payload_seed, salt)
    return Payloads(PayloadIds(sc.repeats, point.payload_seed), make)


def _workload_repeats(payloads: Payloads, m: Measurement) -> dict:
    """The share of the measured requests whose payload an earlier request of the point carried:
    the hit ratio of a cache that never evicts and has every answer back in time."""
    cols = m.log.columns()
    ids = payloads.ids(m.first_payload + len(cols["intended"]))
    repeats = repeated(ids)[m.first_payload :]
    measured = (cols["intended"] >= m.window_start) & (cols["intended"] <= m.window_end)
    share = repeats[measured].mean() if measured.any() else np.nan
    return {"workload_repeat_share": float(share)}


async def _accuracy(runner: Runner, bundle: ModelBundle | None, cfg: DictConfig) -> dict:
    """Compare what the runner serves with the fp32 reference, through the serving path."""
    if cfg.accuracy_samples <= 0:
        return not_measured("not measured: accuracy_samples=0")
    if bundle is None:
        return not_measured("not measured: the server's model is not one the harness builds")
    samples = eval_samples(bundle, cfg.accuracy_samples)
    served = []
    for i, sample in enumerate(samples):
        served.append((await runner.infer(Request(-1 - i, [sample]))).output)
    reference = reference_outputs(bundle, cfg.accuracy_samples, cfg.cache_dir)
    return compare(np.concatenate(served), reference, bundle.output_kind)


class _ProgressBar:
    """A bar per load point, advanced from the driver's ticks: seconds done, requests done."""

    def __init__(self, point: LoadPoint, enabled: bool) -> None:
        open_ended = scenario_of(point.scenario).open_ended
        total = None if open_ended else point.warmup_s + point.duration_s
        self.bar = tqdm(
            total=total,
            desc=f"{point.label:>20}",
            unit="s",
            disable=not enabled,
            bar_format="{desc} |{bar:30}| {n:.0f}/{total:.0f} s {postfix}"
            if total
            else "{desc} {elapsed} {postfix}",
            leave=True,
        )

    def __call__(self, elapsed_s: float, completed: int) -> None:
        if self.bar.total:
            self.bar.n = min(elapsed_s, self.bar.total)
        self.bar.set_postfix_str(f"{completed} requests", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
