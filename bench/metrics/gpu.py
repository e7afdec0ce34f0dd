"""GPU utilisation, memory, power and energy through NVML, where a GPU exists.

With no GPU (or no driver) `nvmlInit` raises `NVMLError`: the sampler then says
`gpu_available = False`, its columns are NaN, and nothing fails.
"""

from __future__ import annotations

import threading
import time

import numpy as np

_COLUMNS = ("gpu_util_pct", "gpu_mem_peak_mb", "gpu_power_w", "gpu_energy_j")


def gpu_names() -> list[str]:
    """Names of the GPUs NVML sees; empty where there is none."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # NVMLError, or a driver library that is not there at all
        return []
    try:
        return [
            _text(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)))
            for i in range(pynvml.nvmlDeviceGetCount())
        ]
    finally:
        pynvml.nvmlShutdown()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class GpuSampler:
    """Samples every GPU every `interval_s`; `summary(t0, t1)` averages and peaks a window."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.available = False
        self.samples: list[tuple[float, float, float, float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handles: list = []

    def start(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except Exception:
            self.available = False
            return
        self._nvml = pynvml
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        self.available = bool(self._handles)
        self.samples.clear()
        self._stop.clear()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="gpu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if not self.available:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self._nvml.nvmlShutdown()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        nv = self._nvml
        util = mem = power = energy = 0.0
        for handle in self._handles:
            util += _try(lambda h=handle: nv.nvmlDeviceGetUtilizationRates(h).gpu)
            mem += _try(lambda h=handle: nv.nvmlDeviceGetMemoryInfo(h).used / 2**20)
            power += _try(lambda h=handle: nv.nvmlDeviceGetPowerUsage(h) / 1000.0)
            # Total energy since driver load, millijoules (Volta and newer).
            energy += _try(lambda h=handle: nv.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0)
        n = len(self._handles)
        self.samples.append((time.perf_counter(), util / n, mem, power, energy))

    def summary(self, t0: float, t1: float) -> dict:
        row = {"gpu_available": self.available, **{c: np.nan for c in _COLUMNS}}
        if not self.available or not self.samples:
            return row
        data = np.array(self.samples)
        inside = data[(data[:, 0] >= t0) & (data[:, 0] <= t1)]
        if len(inside) == 0:
            inside = data
        row["gpu_util_pct"] = float(np.nanmean(inside[:, 1]))
        row["gpu_mem_peak_mb"] = float(np.nanmax(inside[:, 2]))
        row["gpu_power_w"] = float(np.nanmean(inside[:, 3]))
        row["gpu_energy_j"] = float(inside[-1, 4] - inside[0, 4]) if len(inside) > 1 else np.nan
        return row


def _try(read) -> float:
    """One NVML reading; NaN where this GPU does not support it."""
    try:
        return float(read())
    except Exception:
        return np.nan
