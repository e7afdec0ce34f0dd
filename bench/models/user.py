"""A user's own model, in one of three forms.

`model=onnx_file model.path=FILE.onnx`
    Served as it is by ONNX Runtime; there is no torch module (`load_module` is None) and the
    file is its own fp32 reference. Inputs are random tensors of the graph's own names, element
    types and shapes; the first axis of every input is the batch axis, and `model.input_shapes`
    fixes the other axes where the graph leaves them symbolic. torch is never imported here.

`model=torch_file model.path=FILE`
    A TorchScript archive (`torch.jit.save`) or a `torch.export` program (`torch.export.save`,
    `.pt2`), told apart by the archive's content, not its suffix. Both load without running
    arbitrary Python: TorchScript's loader only rebuilds tensors and TorchScript code, and a
    `.pt2` is checked before loading, since `torch.export.load` would unpickle some entries
    with the full pickle (see `_check_pt2_is_safe`). Inputs: `model.input_shapes` (name -> dims
    without the batch axis) with `model.input_dtype`; a `torch.export` program brings its own
    names, shapes and dtypes, which `model.input_shapes` may override.

`model=python model.target=pkg.module:build`
    `build()` takes no arguments and returns `(module, make_inputs)`:
      - `module`: a `torch.nn.Module` in eval mode, called with the input arrays as tensors,
        positionally in the key order of `make_inputs`' dict, returning one tensor whose first
        axis is the batch axis;
      - `make_inputs(batch_size: int, seed: int) -> dict[str, np.ndarray]`: one array per
        input, each with `batch_size` as its first axis; the same seed gives the same arrays.
    `build()` must give the same weights every time (seed any random initialisation): each
    process that serves or checks the model calls it. `pkg.module` is imported as Python
    imports it: from the working directory or PYTHONPATH.

Every bundle's output is the model's first output; it is compared as "logits" (top-1
agreement) when it is 2-D, (batch, classes), and as an "embedding" (cosine similarity) in any
other shape, since a top-1 over a flattened feature map would mean nothing.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import io
import json
import zipfile
from collections.abc import Callable, Sequence
from functools import cache, reduce
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bench.config.model import OnnxFileModelConfig, PythonModelConfig, TorchFileModelConfig
from bench.models.base import ModelBundle
from bench.validation import ConfigError

_OUTPUT = "output"  # the output's name where the model does not name it (torch modules)
_INPUT_DTYPES = ("float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool")
_TORCH_FILE = "a .pt/.pt2 archive saved by torch.jit.save or torch.export.save"
_PYTHON_TARGET = (
    "expected 'pkg.module:build', where build() returns (module, make_inputs) and "
    "make_inputs(batch_size, seed) returns a dict of numpy arrays with batch_size rows"
)


class InputSpec(NamedTuple):
    """One model input: its name, element type and shape without the batch axis."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]


# --- shared ------------------------------------------------------------------------------------


def _existing_file(path: str) -> Path:
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        what = "is not a file" if resolved.exists() else "does not exist"
        raise ConfigError(f"model.path: {resolved} {what}")
    return resolved.resolve()


def _digest(*parts: bytes | Path) -> str:
    """A content hash of byte strings and files (read in chunks: weights can be gigabytes)."""
    digest = hashlib.sha256()
    for part in parts:
        one = hashlib.sha256()
        if isinstance(part, Path):
            with part.open("rb") as file:
                for chunk in iter(lambda: file.read(1 << 20), b""):
                    one.update(chunk)
        else:
            one.update(part)
        digest.update(one.digest())
    return digest.hexdigest()[:16]


def _random_items(specs: Sequence[InputSpec], count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """`count` requests' items: one array per input, seeded; integers in [0, 10) so that ids and
    indices stay valid for small vocabularies and tables."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in specs:
        shape = (count, *spec.shape)
        if spec.dtype == np.bool_:
            arrays[spec.name] = rng.random(shape) < 0.5
        elif np.issubdtype(spec.dtype, np.integer):
            arrays[spec.name] = rng.integers(0, 10, size=shape).astype(spec.dtype)
        else:
            arrays[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return _split(arrays, count)


def _split(arrays: dict[str, np.ndarray], count: int) -> list[dict[str, np.ndarray]]:
    return [{name: array[i] for name, array in arrays.items()} for i in range(count)]


def _stacker(names: Sequence[str]) -> Callable[[Sequence[dict]], dict[str, np.ndarray]]:
    def preprocess(items: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {name: np.stack([item[name] for item in items]) for name in names}

    return preprocess


def _output_kind(rank: int | None) -> str:
    # Top-1 agreement names a class only for (batch, classes); see the module docstring.
    return "logits" if rank == 2 else "embedding"


def _dynamic_axes(names: Sequence[str], output: str) -> dict[str, dict[int, str]]:
    return {name: {0: "batch"} for name in (*names, output)}


def _given_shapes(cfg: OnnxFileModelConfig | TorchFileModelConfig) -> dict[str, tuple[int, ...]]:
    return {str(name): tuple(int(d) for d in dims) for name, dims in cfg.input_shapes.items()}


def _check_known(given: dict[str, Any], names: Sequence[str], path: Path) -> None:
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ConfigError(
            f"model.input_shapes: {path} has no input named {', '.join(unknown)}; "
            f"its inputs are {', '.join(names)}"
        )


def _probe(module: Any, batch: dict[str, np.ndarray], field: str, source: str) -> int:
    """Run `module` once on `batch` (two rows); return its output's rank. A module that rejects
    its inputs fails here, at configuration time, with the field to fix, not mid-sweep."""
    import torch

    try:
        with torch.inference_mode():
            out = module(*(torch.from_numpy(array) for array in batch.values()))
    except Exception as exc:
        shapes = ", ".join(f"{name}: {a.dtype}{list(a.shape)}" for name, a in batch.items())
        raise ConfigError(
            f"{field}: {source} fails on inputs {shapes}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[0] != 2:
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"{field}: {source} must return one tensor whose first axis is the batch; "
            f"for a batch of 2 it returned {got}"
        )
    return out.dim()


# --- ONNX file ---------------------------------------------------------------------------------


def build_onnx_file(cfg: OnnxFileModelConfig) -> ModelBundle:
    """A user's ONNX file, served as it is."""
    import onnx  # the protobuf reader only: no runtime, no torch

    path = _existing_file(cfg.path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ConfigError(
            f"model.path: {path} is not an ONNX model (expected a .onnx file saved by "
            f"torch.onnx.export or onnx.save; reading it failed: {type(exc).__name__})"
        ) from exc
    graph = proto.graph
    # Before IR version 4, weights were listed among the inputs too; they are not fed.
    weights = {init.name for init in graph.initializer}
    graph_inputs = [i for i in graph.input if i.name not in weights]
    if not proto.ir_version or not graph_inputs or not graph.output:
        raise ConfigError(
            f"model.path: {path} is not an ONNX model with inputs and outputs "
            "(expected a .onnx file saved by torch.onnx.export or onnx.save)"
        )
    given = _given_shapes(cfg)
    _check_known(given, [i.name for i in graph_inputs], path)
    specs = [_onnx_input(value, given.get(value.name), path) for value in graph_inputs]
    output = graph.output[0]
    output_type = output.type.tensor_type
    rank = len(output_type.shape.dim) if output_type.HasField("shape") else None
    # Weights stored beside the file belong to the model's identity as much as the file.
    external = sorted({_external_location(t) for t in graph.initializer if _is_external(t)})
    for name in external:
        if not (path.parent / name).is_file():
            raise ConfigError(f"model.path: {path} keeps weights in {name}, not found beside it")

    @cache
    def fingerprint() -> str:
        return _digest(path, *(path.parent / name for name in external))

    names = [s.name for s in specs]
    return ModelBundle(
        name="onnx_file",
        input_names=tuple(names),
        output_name=output.name,
        dynamic_axes=_dynamic_axes(names, output.name),
        output_kind=_output_kind(rank),
        samples=lambda count, seed: _random_items(specs, count, seed),
        preprocess=_stacker(names),
        load_module=None,
        fingerprint=fingerprint,
        onnx_file=path,
        artifact_files=(path, *(path.parent / name for name in external)),
    )


def _onnx_input(value: Any, given: tuple[int, ...] | None, path: Path) -> InputSpec:
    from onnx import TensorProto, helper

    name = value.name
    if not value.type.HasField("tensor_type"):
        raise ConfigError(f"model.path: input {name!r} of {path} is not a tensor; unsupported")
    tensor_type = value.type.tensor_type
    if tensor_type.elem_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        raise ConfigError(f"model.path: input {name!r} of {path} has no numeric element type")
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
    dims = (
        [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        if tensor_type.HasField("shape")
        else None
    )
    if dims is not None and not dims:
        raise ConfigError(f"model.path: input {name!r} of {path} is a scalar: no batch axis")
    if given is not None:
        fixed = dims[1:] if dims is not None else None
        if fixed is not None and (
            len(fixed) != len(given)
            or any(f not in (None, g) for f, g in zip(fixed, given, strict=True))
        ):
            raise ConfigError(
                f"model.input_shapes.{name}: {list(given)} does not fit the graph's shape "
                f"{['?' if d is None else d for d in fixed]} (without the batch axis) in {path}"
            )
        return InputSpec(name, dtype, given)
    if dims is None or None in dims[1:]:
        shown = "unknown" if dims is None else ["?" if d is None else d for d in dims[1:]]
        raise ConfigError(
            f"model.input_shapes: input {name!r} of {path} has shape {shown} after the batch "
            f"axis; give it without the batch axis, e.g. +model.input_shapes={{{name}:[...]}}"
        )
    return InputSpec(name, dtype, tuple(dims[1:]))


def _is_external(tensor: Any) -> bool:
    from onnx.external_data_helper import uses_external_data

    return uses_external_data(tensor)


def _external_location(tensor: Any) -> str:
    from onnx.external_data_helper import ExternalDataInfo

    return ExternalDataInfo(tensor).location


# --- TorchScript or torch.export file ----------------------------------------------------------


def build_torch_file(cfg: TorchFileModelConfig) -> ModelBundle:
    """A user's TorchScript archive or torch.export program."""
    path = _existing_file(cfg.path)
    kind = _torch_archive_kind(path)
    load = _load_torchscript if kind == "torchscript" else _load_exported
    module, specs = load(path, cfg)
    names = [s.name for s in specs]
    batch = _stacker(names)(_random_items(specs, 2, 0))
    rank = _probe(module, batch, "model.input_shapes", f"the model in {path}")
    return _torch_bundle(
        "torch_file",
        names,
        rank,
        samples=lambda count, seed: _random_items(specs, count, seed),
        # A fresh module per call: an optimization that edits it never reaches the reference.
        load_module=lambda: load(path, cfg)[0],
        fingerprint=cache(lambda: _digest(kind.encode(), path)),
        artifact_files=(path,),
    )


def _torch_archive_kind(path: Path) -> str:
    """Which loader reads `path`, from the archive's entries (both kinds are zip files whose
    entries sit under one root folder): TorchScript ("torchscript") keeps its code in `code/`
    and `constants.pkl`; a torch.export archive ("export") says `pt2` in `archive_format` and
    keeps its programs in `models/`."""
    wrong = f"model.path: {path} is not a TorchScript or torch.export file (expected {_TORCH_FILE})"
    try:
        with zipfile.ZipFile(path) as archive:
            entries = {name.split("/", 1)[1] for name in archive.namelist() if "/" in name}
            if "archive_format" in entries:
                root = archive.namelist()[0].split("/", 1)[0]
                fmt = archive.read(f"{root}/archive_format").decode(errors="replace").strip()
                if fmt == "pt2" and any(e.startswith("models/") for e in entries):
                    return "export"
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ConfigError(wrong) from exc
    if "constants.pkl" in entries and any(e.startswith("code/") for e in entries):
        return "torchscript"
    if "data.pkl" in entries:
        # torch.save of a module or a state dict: code and weights come apart, nothing to run.
        raise ConfigError(
            f"{wrong}; this looks like torch.save output (a state dict or a pickled module): "
            "save the model with torch.jit.save(torch.jit.script(model)) or "
            "torch.export.save(torch.export.export(model, example_inputs))"
        )
    raise ConfigError(wrong)


def _load_torchscript(path: Path, cfg: TorchFileModelConfig) -> tuple[Any, list[InputSpec]]:
    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:
        raise ConfigError(
            f"model.path: {path} could not be loaded as TorchScript: {type(exc).__name__}: {exc}"
        ) from exc
    arguments = module.forward.schema.arguments[1:]  # [0] is self
    names = [a.name for a in arguments]
    required = [a.name for a in arguments if not a.has_default_value()]
    given = _given_shapes(cfg)
    example = ", ".join(f"{n}:[...]" for n in required)
    if not given:
        raise ConfigError(
            f"model.input_shapes: a TorchScript file does not record its input shapes; give "
            f"each of forward({', '.join(names)}) a shape without the batch axis, e.g. "
            f"+model.input_shapes={{{example}}} (and model.input_dtype, default float32)"
        )
    _check_known(given, names, path)
    missing = [n for n in required if n not in given]
    if missing:
        raise ConfigError(
            f"model.input_shapes: no shape for {', '.join(missing)}, which forward() of {path} "
            f"requires; e.g. +model.input_shapes={{{example}}}"
        )
    if cfg.input_dtype not in _INPUT_DTYPES:
        raise ConfigError(
            f"model.input_dtype: accepted values are {', '.join(_INPUT_DTYPES)}; "
            f"got {cfg.input_dtype!r}"
        )
    dtype = np.dtype(cfg.input_dtype)
    return module, [InputSpec(n, dtype, given[n]) for n in names if n in given]


def _load_exported(path: Path, cfg: TorchFileModelConfig) -> tuple[Any, list[InputSpec]]:
    import torch

    _check_pt2_is_safe(path)
    try:
        # A file object: given a name, the loader warns unless it ends in .pt2.
        with path.open("rb") as file:
            program = torch.export.load(file)
    except Exception as exc:
        raise ConfigError(
            f"model.path: {path} could not be loaded as a torch.export program: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    names = list(program.graph_signature.user_inputs)
    given = _given_shapes(cfg)
    _check_known(given, names, path)
    specs = []
    for name in names:
        value = placeholders[name].meta.get("val")
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            raise ConfigError(f"model.path: input {name!r} of {path} is not a batched tensor")
        if isinstance(value.shape[0], int):
            # Exported without a dynamic batch axis, the program guards every call on it.
            raise ConfigError(
                f"model.path: {path} was exported for batch size {value.shape[0]} only; export "
                f"it with a dynamic batch axis, e.g. torch.export.export(model, args, "
                f"dynamic_shapes={{'{name}': {{0: torch.export.Dim('batch')}}}})"
            )
        dims = given.get(name) or tuple(value.shape[1:])
        if not all(isinstance(d, int) for d in dims):
            raise ConfigError(
                f"model.input_shapes: input {name!r} of {path} has shape {list(value.shape[1:])} "
                f"after the batch axis; give it without the batch axis, e.g. "
                f"+model.input_shapes={{{name}:[...]}}"
            )
        dtype = torch.empty(0, dtype=value.dtype).numpy().dtype
        specs.append(InputSpec(name, dtype, tuple(dims)))
    # A program fixes train or eval behaviour when it is exported; its module has no eval().
    return program.module(), specs


def _check_pt2_is_safe(path: Path) -> None:
    """Refuse a .pt2 archive that `torch.export.load` would run code from: compiled AOTInductor
    libraries, pickled Python objects, and pickled tensors that do not load with
    `weights_only=True` (the loader retries those with the full pickle). Raw tensors and the
    JSON program itself are data."""
    import torch

    refused = f"model.path: {path} holds %s; refusing to load it (only tensors and the program)"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        root = names[0].split("/", 1)[0]
        # Entries outside the one root folder are the pre-2.8 layout, which the loader falls
        # back to when the current one fails, and which it unpickles without restriction.
        if any(not n.startswith(f"{root}/") for n in names):
            raise ConfigError(refused % "entries outside its root folder (the old layout)")
        entries = {n.split("/", 1)[1] for n in names}
        if any(e.startswith("data/aotinductor/") for e in entries):
            raise ConfigError(refused % "compiled AOTInductor code")
        pickled = {e for e in entries if e.endswith(".pt")}
        for config in (e for e in entries if e.endswith("_config.json")):
            folder = config.rsplit("/", 1)[0]
            try:
                payloads = json.loads(archive.read(f"{root}/{config}"))["config"].values()
                files = [(p["path_name"], bool(p.get("use_pickle"))) for p in payloads]
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ConfigError(refused % f"a malformed {config}") from exc
            for name, use_pickle in files:
                if name.startswith(("custom_obj_", "opaque_obj_")):
                    raise ConfigError(refused % f"a pickled Python object ({name})")
                if use_pickle:
                    pickled.add(f"{folder}/{name}")
        for entry in sorted(pickled):
            try:
                torch.load(io.BytesIO(archive.read(f"{root}/{entry}")), weights_only=True)
            except Exception as exc:
                raise ConfigError(refused % f"{entry}, which is not plain tensors") from exc


# --- Python import path ------------------------------------------------------------------------


def build_python(cfg: PythonModelConfig) -> ModelBundle:
    """`build()` at `cfg.target`, wrapped: see this module's docstring for the contract."""
    import torch

    target = str(cfg.target)
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"model.target: {_PYTHON_TARGET}; got {target!r}")
    try:
        imported = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"model.target: cannot import {module_name!r} ({type(exc).__name__}: {exc}); "
            f"{_PYTHON_TARGET}, with pkg.module importable from the working directory or "
            "PYTHONPATH"
        ) from exc
    try:
        build = reduce(getattr, attribute.split("."), imported)
    except AttributeError as exc:
        raise ConfigError(
            f"model.target: {module_name} has no attribute {attribute!r}; {_PYTHON_TARGET}"
        ) from exc
    built = build()
    if (
        not isinstance(built, tuple)
        or len(built) != 2
        or not isinstance(built[0], torch.nn.Module)
        or not callable(built[1])
    ):
        raise ConfigError(
            f"model.target: {target}() returned {type(built).__name__}, not "
            f"(torch.nn.Module, make_inputs); {_PYTHON_TARGET}"
        )
    module, make_inputs = built

    def make_items(count: int, seed: int) -> list[dict[str, np.ndarray]]:
        arrays = make_inputs(count, seed)
        if (
            not isinstance(arrays, dict)
            or not arrays
            or not all(
                isinstance(a, np.ndarray) and a.ndim > 0 and a.shape[0] == count
                for a in arrays.values()
            )
        ):
            raise ConfigError(
                f"model.target: make_inputs({count}, {seed}) of {target} must return a "
                f"non-empty dict of numpy arrays with {count} rows each; {_PYTHON_TARGET}"
            )
        return _split(arrays, count)

    probe = make_items(2, 0)
    names = list(probe[0])
    rank = _probe(module, _stacker(names)(probe), "model.target", f"the module of {target}")

    @cache
    def fingerprint() -> str:
        # The weights, the layer structure and the source of the target's module: an edit to
        # code in another file is not seen, and needs the cache's exports cleared.
        source_file = getattr(imported, "__file__", None)
        source = Path(source_file) if source_file else b""
        weights = [
            name.encode() + t.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()
            for name, t in module.state_dict().items()
            if isinstance(t, torch.Tensor)
        ]
        return _digest(target.encode(), repr(module).encode(), source, *weights)

    return _torch_bundle(
        "python",
        names,
        rank,
        samples=make_items,
        # A copy per call: an optimization that edits the module never reaches the reference.
        load_module=lambda: copy.deepcopy(module).eval(),
        fingerprint=fingerprint,
    )


def _torch_bundle(
    name: str,
    names: list[str],
    rank: int,
    samples: Callable[[int, int], list],
    load_module: Callable[[], Any],
    fingerprint: Callable[[], str],
    artifact_files: tuple[Path, ...] = (),
) -> ModelBundle:
    """A user's torch model as a bundle: per-sample dicts of named arrays, stacked per batch."""
    return ModelBundle(
        name=name,
        input_names=tuple(names),
        output_name=_OUTPUT,
        dynamic_axes=_dynamic_axes(names, _OUTPUT),
        output_kind=_output_kind(rank),
        samples=samples,
        preprocess=_stacker(names),
        load_module=load_module,
        fingerprint=fingerprint,
        artifact_files=artifact_files,
    )
