"""Optimized ONNX files: quantized (dynamic int8, static int8 QDQ), float16, or exported from a
pruned module. Each is made once and cached under `<cache_dir>/onnx`, keyed by the model's
fingerprint and the settings (never beside a user's own ONNX file)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from bench.backends.onnx_export import onnx_path
from bench.config.optimization import OptimizationConfig
from bench.cpu import has_vnni
from bench.models.base import ModelBundle
from bench.registry import option_class, resolve
from bench.validation import ConfigError

CALIBRATION_SEED = 7_700_001  # calibration inputs are drawn apart from eval and load inputs


def optimized_onnx(
    bundle: ModelBundle, opt: OptimizationConfig, cache_dir: str, opset: int
) -> tuple[Path, str, dict]:
    """(path, precision, facts) of the ONNX file that serves `bundle` optimized as `opt` says:
    the export (of the restructured module, for pruning), then what the optimization's config
    names for ONNX Runtime, made once and cached beside it; `facts`, what it chose."""
    option = option_class("optimization", opt.name)
    if option.onnxruntime is None:
        raise ConfigError(option.refusal("onnxruntime"))
    if option.restructure is None:
        base = onnx_path(bundle, cache_dir, opset)
    else:
        from bench.backends.torch_optimize import restructure

        base = onnx_path(
            bundle, cache_dir, opset, variant=_key(opt), transform=lambda m: restructure(m, opt)[0]
        )
    derived = Path(cache_dir).expanduser() / "onnx" / f"{base.stem}-{_key(opt)}.onnx"
    return resolve(option.onnxruntime)(bundle, base, opt, derived)


# What each optimization does to an exported graph: (bundle, base, opt, derived) ->
# (path, precision, facts), `derived` being where a graph made from `base` is cached.


def unchanged(bundle: ModelBundle, base: Path, opt: OptimizationConfig, derived: Path):
    return base, "fp32", {}


def int8_dynamic(bundle: ModelBundle, base: Path, opt: OptimizationConfig, derived: Path):
    reduce_range, derived = _weight_range(opt, derived)
    made = _derived(base, derived, lambda src, dst: _dynamic(src, dst, opt, reduce_range))
    return made, "int8", {"reduce_range": reduce_range}


def int8_static(bundle: ModelBundle, base: Path, opt: OptimizationConfig, derived: Path):
    reduce_range, derived = _weight_range(opt, derived)
    made = _derived(base, derived, lambda src, dst: _static(bundle, src, dst, opt, reduce_range))
    return made, "int8", {"reduce_range": reduce_range}


def _weight_range(opt: OptimizationConfig, derived: Path) -> tuple[bool, Path]:
    """Whether int8 weights get 7 bits (`opt.reduce_range`; null: where this CPU has no VNNI),
    and the cache path of the graph so quantized."""
    reduce_range = not has_vnni() if opt.reduce_range is None else opt.reduce_range
    return reduce_range, derived.with_name(f"{derived.stem}-rr{int(reduce_range)}{derived.suffix}")


def fp16(bundle: ModelBundle, base: Path, opt: OptimizationConfig, derived: Path):
    return _derived(base, derived, _float16), "fp16", {}


def _key(opt: OptimizationConfig) -> str:
    settings = json.dumps(
        OmegaConf.to_container(OmegaConf.create(opt), enum_to_str=True), sort_keys=True
    )
    return f"{opt.name}-{hashlib.sha256(settings.encode()).hexdigest()[:8]}"


def _derived(base: Path, path: Path, make: Callable[[str, str], None]) -> Path:
    """`path`, made from `base` by `make(src, dst)` unless it exists already."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
        os.close(fd)
        try:
            make(str(base), tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def _dynamic(src: str, dst: str, opt: OptimizationConfig, reduce_range: bool) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _prepared(src, dst) as prepared:
        quantize_dynamic(
            prepared,
            dst,
            per_channel=opt.per_channel,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8,
        )


@contextmanager
def _prepared(src: str, dst: str) -> Iterator[str]:
    """The graph as ONNX Runtime's quantizers want it: the dynamo exporter's stored
    intermediate shapes dropped (they clash with the quantizer's own inference, "Inferred shape
    and existing shape differ"), then ONNX Runtime's pre-processing (shape inference, graph
    clean-up). Its symbolic shape inference gives up on MiniLM's dynamic sequence axis, so
    ONNX's own shape inference is used alone."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    stripped, prepared = dst + ".stripped.onnx", dst + ".prep.onnx"
    try:
        model = onnx.load(src)
        del model.graph.value_info[:]
        onnx.save(model, stripped)
        quant_pre_process(stripped, prepared, skip_symbolic_shape=True)
        yield prepared
    finally:
        for leftover in (stripped, prepared):
            if os.path.exists(leftover):
                os.unlink(leftover)


class _Calibration:
    """ONNX Runtime's CalibrationDataReader protocol over the model's own sample inputs."""

    def __init__(self, bundle: ModelBundle, count: int) -> None:
        samples = bundle.samples(count, CALIBRATION_SEED)
        self._feeds: Iterator[dict[str, np.ndarray]] = iter(
            [bundle.preprocess([s]) for s in samples]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _static(
    bundle: ModelBundle, src: str, dst: str, opt: OptimizationConfig, reduce_range: bool
) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    with _prepared(src, dst) as prepared:
        quantize_static(
            prepared,
            dst,
            _Calibration(bundle, opt.calibration_samples),
            quant_format=QuantFormat.QDQ,
            per_channel=opt.per_channel,
            reduce_range=reduce_range,
            # u8 activations with s8 weights: the combination x86 int8 kernels are fastest at.
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[str(opt.calibration_method)],
        )


def _float16(src: str, dst: str) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(src), keep_io_types=True)
    onnx.save(model, dst)
