"""Capacity planning: from measurements on one host to servers of a catalog, with the scaling
model and its assumptions stated (see `bench.capacity.scaling.FORMULA`)."""

from bench.capacity.calibration import calibrate, host_calibration
from bench.capacity.catalog import (
    Catalog,
    CpuSpec,
    GpuSpec,
    Price,
    Server,
    Tier,
    cpu_matches,
    default_catalog_path,
    load_catalog,
)
from bench.capacity.scaling import FORMULA, Scale, gpu_status, scale, workers_per_server

__all__ = [
    "FORMULA",
    "Catalog",
    "CpuSpec",
    "GpuSpec",
    "Price",
    "Scale",
    "Server",
    "Tier",
    "calibrate",
    "cpu_matches",
    "default_catalog_path",
    "gpu_status",
    "host_calibration",
    "load_catalog",
    "scale",
    "workers_per_server",
]
