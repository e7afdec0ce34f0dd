"""The model axis: the real EfficientNet-Lite0 on encoded images, and a user's own model as an
ONNX file, a TorchScript or torch.export file, or a Python `pkg.module:build`."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image

from bench.backends import build_predictor
from bench.backends.accuracy import compare, reference_outputs
from bench.backends.onnx_export import onnx_path
from bench.config.backend import OnnxRuntimeBackendConfig, TorchBackendConfig
from bench.config.model import (
    EfficientNetLite0Config,
    OnnxFileModelConfig,
    PythonModelConfig,
    TorchFileModelConfig,
)
from bench.config.optimization import NoOptimizationConfig
from bench.models import build_model
from bench.run import run_benchmark
from bench.validation import ConfigError
from tests.conftest import checkout_env, compose

# TorchScript is deprecated in torch, and still what many users' models are saved as.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")

NONE = NoOptimizationConfig()
ORT = OnnxRuntimeBackendConfig(threads=1)
TINY = ["scenario.warmup_s=0.2", "scenario.duration_s=0.6", "progress=false", "accuracy_samples=4"]
# ImageNet classes of matplotlib's sample photo of Grace Hopper in naval uniform.
ACADEMIC_GOWN, MILITARY_UNIFORM, MORTARBOARD = 400, 652, 667


class Pooled(torch.nn.Module):
    """A small user model: a sequence of feature vectors, mean-pooled, to class logits."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.linear(x).mean(dim=1) * scale


@pytest.fixture(scope="module")
def pooled() -> Pooled:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return Pooled().eval()


def _args(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(batch, 6, 4), torch.rand(batch, 1)


@pytest.fixture(scope="module")
def user_files(pooled, tmp_path_factory) -> dict[str, Path]:
    """The same model saved as a user would: ONNX (sequence axis left symbolic), TorchScript,
    torch.export with a dynamic batch, and torch.export for batch 2 only."""
    folder = tmp_path_factory.mktemp("user-models")
    batch = torch.export.Dim("batch")
    files = {name: folder / name for name in ("m.onnx", "m.pt", "m.pt2", "static.pt2")}
    with warnings.catch_warnings():  # the exporter's notes on torch's own internals
        warnings.simplefilter("ignore")
        torch.onnx.export(
            pooled,
            _args(2),
            files["m.onnx"],
            input_names=["x", "scale"],
            output_names=["logits"],
            dynamic_shapes={"x": {0: batch, 1: torch.export.Dim("sequence")}, "scale": {0: batch}},
        )
    torch.jit.save(torch.jit.script(pooled), files["m.pt"])
    dynamic = {"x": {0: batch}, "scale": {0: batch}}
    torch.export.save(torch.export.export(pooled, _args(2), dynamic_shapes=dynamic), files["m.pt2"])
    torch.export.save(torch.export.export(pooled, _args(2)), files["static.pt2"])
    return files


def _forward(module: torch.nn.Module, inputs: dict[str, np.ndarray]) -> np.ndarray:
    with torch.inference_mode():
        return module(*(torch.from_numpy(a) for a in inputs.values())).numpy()


# --- EfficientNet-Lite0 ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def effnet():
    return build_model(EfficientNetLite0Config())


@pytest.fixture(scope="module")
def effnet_torch(effnet, cache_dir):
    return build_predictor(effnet, TorchBackendConfig(), NONE, cache_dir)


def _photo() -> bytes:
    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()


def _encoded(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_efficientnet_samples_are_encoded_images_deterministic_per_seed(effnet):
    samples = effnet.samples(16, 7)
    assert samples == effnet.samples(16, 7)
    assert samples != effnet.samples(16, 8)
    assert len(set(samples)) == 16
    images = [Image.open(io.BytesIO(s)) for s in samples]
    assert {im.format for im in images} == {"JPEG", "PNG"}
    assert len({im.size for im in images}) >= 3  # several sizes and aspect ratios


def test_efficientnet_preprocessing_decodes_crops_and_normalises(effnet):
    batch = effnet.preprocess(effnet.samples(3, 0))["image"]
    assert batch.shape == (3, 3, 224, 224) and batch.dtype == np.float32
    assert batch.min() >= -127 / 128 and batch.max() <= 1.0 and batch.std() > 0.1
    # (pixel - 127) / 128: black and white land at the ends, mid-grey at zero.
    plain = effnet.preprocess(
        [_encoded((0, 0, 0)), _encoded((255, 255, 255)), _encoded((127,) * 3)]
    )
    np.testing.assert_allclose(plain["image"].reshape(3, -1).mean(axis=1), [-127 / 128, 1, 0])


def test_efficientnet_recognises_a_real_photo(effnet_torch, effnet):
    logits = effnet_torch.predict([_photo(), *effnet.samples(4, 1)])
    assert logits.shape == (5, 1000)
    # Grace Hopper in her naval uniform: its three clothing classes, far ahead of the rest.
    probs = np.exp(logits[0] - logits[0].max())
    probs /= probs.sum()
    top = np.argsort(probs)[::-1]
    assert set(top[:3]) == {ACADEMIC_GOWN, MILITARY_UNIFORM, MORTARBOARD}
    assert probs[top[2]] > 2 * probs[top[3]]
    # Drawn images are not one class: the network looks at what it is given.
    assert len(set(np.argmax(logits, axis=1))) >= 3
    assert np.all(logits.std(axis=1) > 0.5)


def test_efficientnet_onnx_export_agrees_with_torch(effnet, effnet_torch, cache_dir):
    ort_p = build_predictor(effnet, ORT, NONE, cache_dir)
    images = [_photo(), *effnet.samples(5, 3)]
    expected, served = effnet_torch.predict(images), ort_p.predict(images)
    np.testing.assert_array_equal(np.argmax(served, axis=1), np.argmax(expected, axis=1))
    assert np.max(np.abs(served - expected)) < 1e-3
    # One image alone gives what it gives inside a batch: the batch axis is dynamic.
    np.testing.assert_allclose(ort_p.predict(images[:1]), served[:1], atol=1e-4)


# --- a user's ONNX file ------------------------------------------------------------------------


def test_onnx_file_is_served_as_is_and_is_its_own_reference(pooled, user_files, tmp_path):
    path = user_files["m.onnx"]
    with pytest.raises(ConfigError, match=r"model\.input_shapes: input 'x' .*m\.onnx"):
        build_model(OnnxFileModelConfig(path=str(path)))
    bundle = build_model(OnnxFileModelConfig(path=str(path), input_shapes={"x": [6, 4]}))
    assert bundle.load_module is None and bundle.input_names == ("x", "scale")
    assert (bundle.output_name, bundle.output_kind) == ("logits", "logits")
    assert onnx_path(bundle, str(tmp_path), 18) == path  # no export of an export
    samples = bundle.samples(5, 2)
    assert samples[0]["x"].shape == (6, 4) and samples[0]["x"].dtype == np.float32
    served = build_predictor(bundle, ORT, NONE, str(tmp_path)).predict(samples)
    np.testing.assert_allclose(served, _forward(pooled, bundle.preprocess(samples)), atol=1e-5)
    reference = reference_outputs(bundle, 4, str(tmp_path))
    assert compare(reference, reference, "logits")["accuracy_top1_agreement"] == 1.0
    assert reference.shape == (4, 3)


def test_an_onnx_file_is_served_without_importing_torch(user_files, tmp_path):
    code = (
        "import sys\n"
        "from bench.backends import build_predictor\n"
        "from bench.config.backend import OnnxRuntimeBackendConfig\n"
        "from bench.config.model import OnnxFileModelConfig\n"
        "from bench.config.optimization import NoOptimizationConfig\n"
        "from bench.models import build_model\n"
        f"b = build_model(OnnxFileModelConfig(path={str(user_files['m.onnx'])!r}, "
        "input_shapes={'x': [6, 4]}))\n"
        f"p = build_predictor(b, OnnxRuntimeBackendConfig(), NoOptimizationConfig(), "
        f"{str(tmp_path)!r})\n"
        "assert p.predict(b.samples(2, 0)).shape == (2, 3)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=checkout_env(), check=True, timeout=120
    )


# --- a user's TorchScript or torch.export file -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shapes"),
    [("m.pt", {"x": [6, 4], "scale": [1]}), ("m.pt2", {})],
    ids=["torchscript", "torch.export"],
)
def test_torch_file_matches_the_original_module(name, shapes, pooled, user_files, cache_dir):
    bundle = build_model(TorchFileModelConfig(path=str(user_files[name]), input_shapes=shapes))
    assert bundle.input_names == ("x", "scale") and bundle.output_kind == "logits"
    samples = bundle.samples(3, 4)
    expected = _forward(pooled, bundle.preprocess(samples))
    np.testing.assert_allclose(_forward(bundle.load_module(), bundle.preprocess(samples)), expected)
    # And exported to ONNX from the loaded file, served by ONNX Runtime.
    served = build_predictor(bundle, ORT, NONE, cache_dir).predict(samples)
    np.testing.assert_allclose(served, expected, atol=1e-5)


# --- a user's Python build function ------------------------------------------------------------


def test_python_target_builds_a_user_model(cache_dir):
    from tests.user_model_example import build

    bundle = build_model(PythonModelConfig(target="tests.user_model_example:build"))
    assert bundle.input_names == ("ids", "mask") and bundle.output_kind == "logits"
    samples = bundle.samples(4, 9)
    assert samples[0]["ids"].shape == (5,) and samples[0]["ids"].dtype == np.int64
    inputs = bundle.preprocess(samples)
    np.testing.assert_array_equal(inputs["ids"], bundle.preprocess(bundle.samples(4, 9))["ids"])
    expected = _forward(build()[0], inputs)
    assert expected.shape == (4, 3)
    torch_p = build_predictor(bundle, TorchBackendConfig(), NONE, cache_dir)
    np.testing.assert_allclose(torch_p.predict(samples), expected, atol=1e-6)
    served = build_predictor(bundle, ORT, NONE, cache_dir).predict(samples)
    np.testing.assert_allclose(served, expected, atol=1e-5)


# --- errors name the file or the field ---------------------------------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, pooled) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad-models")
    files = {
        "random.bin": np.random.default_rng(0).bytes(4096),
        "notes.txt": b"this is not a model\n",
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    torch.save(pooled.state_dict(), folder / "state_dict.pt")
    return {name: folder / name for name in (*files, "state_dict.pt")}


@pytest.mark.parametrize("name", ["random.bin", "notes.txt", "m.pt"])
def test_onnx_file_rejects_what_is_not_onnx(name, bad_files, user_files):
    path = {**bad_files, **user_files}[name]
    with pytest.raises(
        ConfigError, match=f"model.path: {re.escape(str(path))} is not an ONNX model"
    ):
        build_model(OnnxFileModelConfig(path=str(path)))


@pytest.mark.parametrize("name", ["random.bin", "notes.txt", "m.onnx", "state_dict.pt"])
def test_torch_file_rejects_what_is_not_torchscript_or_export(name, bad_files, user_files):
    path = {**bad_files, **user_files}[name]
    with pytest.raises(
        ConfigError, match=f"model.path: {re.escape(str(path))} is not a TorchScript"
    ):
        build_model(TorchFileModelConfig(path=str(path)))


@pytest.mark.parametrize("model", [OnnxFileModelConfig, TorchFileModelConfig])
def test_a_missing_file_is_named(model, tmp_path):
    missing = tmp_path / "nowhere.onnx"
    with pytest.raises(ConfigError, match=f"model.path: {re.escape(str(missing))} does not exist"):
        build_model(model(path=str(missing)))


def test_torch_file_input_errors_name_the_field(user_files):
    script = str(user_files["m.pt"])
    with pytest.raises(ConfigError, match=r"model\.input_shapes: .*forward\(x, scale\)"):
        build_model(TorchFileModelConfig(path=script))
    with pytest.raises(ConfigError, match=r"model\.input_shapes: .*m\.pt fails on inputs"):
        build_model(TorchFileModelConfig(path=script, input_shapes={"x": [6, 5], "scale": [1]}))
    with pytest.raises(ConfigError, match="model.input_shapes: .* has no input named y"):
        build_model(TorchFileModelConfig(path=script, input_shapes={"y": [1]}))
    with pytest.raises(ConfigError, match=r"model\.input_dtype: accepted values"):
        shapes = {"x": [6, 4], "scale": [1]}
        build_model(TorchFileModelConfig(path=script, input_shapes=shapes, input_dtype="f32"))
    with pytest.raises(ConfigError, match=r"static\.pt2 was exported for batch size 2 only"):
        build_model(TorchFileModelConfig(path=str(user_files["static.pt2"])))


class _Touch:
    """Unpickling this creates a file: the proof that a loader ran code from a model file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pt2_that_would_unpickle_code_is_refused_unloaded(user_files, tmp_path):
    marker = tmp_path / "code-ran"
    payload = io.BytesIO()
    torch.save(_Touch(marker), payload)
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(user_files["m.pt2"]) as src, zipfile.ZipFile(evil, "w") as dst:
        for entry in src.infolist():
            content = src.read(entry)
            if entry.filename.endswith("data/weights/model_weights_config.json"):
                content = content.replace(b'"use_pickle": false', b'"use_pickle": true', 1)
            elif entry.filename.endswith("data/weights/weight_0"):
                content = payload.getvalue()
            dst.writestr(entry, content)
    with pytest.raises(ConfigError, match=r"evil\.pt2 holds data/weights/weight_0.*refusing"):
        build_model(TorchFileModelConfig(path=str(evil)))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests.user_model_example", "expected 'pkg.module:build'"),
        ("tests.no_such_module:build", "cannot import 'tests.no_such_module'"),
        ("tests.user_model_example:nope", "has no attribute 'nope'"),
        ("builtins:dict", r"builtins:dict\(\) returned dict, not \(torch\.nn\.Module"),
    ],
)
def test_a_bad_python_target_names_the_field(target, message):
    with pytest.raises(ConfigError, match=rf"model\.target: .*{message}"):
        build_model(PythonModelConfig(target=target))


# --- whole runs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=onnx_file", "+model.input_shapes={x:[6,4]}", "backend=onnxruntime"],
        ["model=python", "model.target=tests.user_model_example:build", "backend=torch"],
        ["model=efficientnet_lite0", "backend=onnxruntime"],
    ],
    ids=["onnx_file", "python", "efficientnet_lite0"],
)
def test_a_run_measures_the_model(overrides, user_files, tmp_path, cache_dir):
    path = [f"model.path={user_files['m.onnx']}"] if "model=onnx_file" in overrides else []
    cfg = compose([*TINY, *overrides, *path, "scenario=single_stream", f"cache_dir={cache_dir}"])
    rows = run_benchmark(cfg, tmp_path)
    assert (rows["status"] == "measured").all(), rows["error"].tolist()
    assert (rows["achieved_qps"] > 0).all() and (rows["errors"] == 0).all()
    assert (rows["accuracy_top1_agreement"] == 1.0).all()
    assert (rows["accuracy_max_abs_diff"] < 1e-3).all()
