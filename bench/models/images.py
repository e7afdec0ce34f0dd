"""Images as requests carry them: encoded bytes (JPEG or PNG), drawn deterministically, and the
decoding and resizing that serving them costs.

Three in four pool images are crops of real photographs that installed packages ship
(scikit-image's cat, coffee cup, astronaut, rocket and motorcycle; matplotlib's portrait of Grace
Hopper): random crops, flips and sizes of them. A classifier is confident on such images, so
top-1 agreement with the fp32 reference measures what quantization changes; on drawn patterns
its top-1 probability was mostly 0.1-0.3 here, and agreement there mostly measured noise. The
rest are drawn with numpy and PIL: gradients, shapes, smooth textures and gratings. All come at
the sizes and aspect ratios of ordinary photos (4:3, 3:4, square, 16:9), mostly JPEG with some
PNG. Like the sentence corpus of the text model, they form a fixed pool that `sample_images`
draws from: a load point's payloads then cost nothing to make after the first draw, and the same
seed always gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# (width, height): camera and web sizes in landscape, portrait, square and wide shapes.
SIZES = ((320, 240), (500, 375), (640, 480), (375, 500), (240, 320), (400, 400), (800, 450))
POOL_SIZE = 64
_POOL_SEED = 4_242  # the pool is one fixed set of images; request seeds only choose from it


def sample_images(count: int, seed: int) -> list[bytes]:
    """`count` encoded images from the pool, the same for the same seed; distinct images while
    `count` fits in the pool."""
    rng = np.random.default_rng(seed)
    indices = rng.choice(POOL_SIZE, size=count, replace=count > POOL_SIZE)
    return [encoded_image(int(i)) for i in indices]


@lru_cache(maxsize=POOL_SIZE)
def encoded_image(index: int) -> bytes:
    """Pool image `index`, drawn and encoded (a few ms; cached for the process)."""
    rng = np.random.default_rng((_POOL_SEED, index))
    width, height = SIZES[rng.integers(len(SIZES))]
    image = _kind(index)(rng, width, height)
    buffer = io.BytesIO()
    if index % 4 == 3:
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="JPEG", quality=int(rng.integers(70, 96)))
    return buffer.getvalue()


def center_crop_resize(data: bytes, size: int, crop_fraction: float) -> np.ndarray:
    """Decode `data` and return the central square of `crop_fraction` of its shorter side,
    resized (bicubic) to `size` x `size`, as uint8 RGB in HWC order."""
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    width, height = rgb.size
    side = min(width, height) * crop_fraction
    box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
    # Resizing from the box crops and scales in one pass, without a cropped copy in between.
    return np.asarray(rgb.resize((size, size), Image.Resampling.BICUBIC, box=box))


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float32)


def _to_image(pixels: np.ndarray, rng: np.random.Generator) -> Image.Image:
    # Sensor-like noise, so that no image is a flat, trivially compressible field.
    noisy = pixels + rng.normal(0.0, 4.0, size=pixels.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def _axes(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs / max(width, height), ys / max(width, height)


def _gradient(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    xs, ys = _axes(width, height)
    angle = rng.uniform(0, 2 * np.pi)
    t = xs * np.cos(angle) + ys * np.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    start, end = _colour(rng), _colour(rng)
    return _to_image(start + t[..., None] * (end - start), rng)


def _shapes(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), tuple(int(c) for c in _colour(rng)))
    draw = ImageDraw.Draw(image)
    short = min(width, height)
    for _ in range(int(rng.integers(3, 9))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.05, 0.4, size=2) * short
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        fill = tuple(int(c) for c in _colour(rng))
        kind = int(rng.integers(3))
        if kind == 0:
            draw.ellipse(box, fill=fill)
        elif kind == 1:
            draw.rectangle(box, fill=fill)
        else:
            corners = int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0, 2 * np.pi, size=corners))
            points = zip(cx + rx * np.cos(angles), cy + ry * np.sin(angles), strict=True)
            draw.polygon([(float(x), float(y)) for x, y in points], fill=fill)
    # A slight blur, as a lens gives: no real photo has perfectly sharp edges.
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float32)
    return _to_image(pixels, rng)


def _texture(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    # Smooth value noise at two scales between two colours: clouds, foliage, marble at a glance.
    t = np.zeros((height, width), dtype=np.float32)
    for cell, weight in ((int(rng.integers(24, 64)), 0.7), (int(rng.integers(4, 12)), 0.3)):
        coarse = rng.random((height // cell + 2, width // cell + 2), dtype=np.float32)
        smooth = Image.fromarray(coarse, "F").resize((width, height), Image.Resampling.BICUBIC)
        t += weight * np.asarray(smooth)
    t = np.clip(t, 0.0, 1.0)
    low, high = _colour(rng), _colour(rng)
    return _to_image(low + t[..., None] * (high - low), rng)


def _grating(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    # Stripes, or a checkerboard-like pattern when two orientations multiply.
    xs, ys = _axes(width, height)
    wave = np.ones_like(xs)
    for _ in range(int(rng.integers(1, 3))):
        angle, cycles = rng.uniform(0, np.pi), rng.uniform(3, 30)
        wave *= np.sin(2 * np.pi * cycles * (xs * np.cos(angle) + ys * np.sin(angle)))
    t = (wave + 1) / 2
    low, high = _colour(rng), _colour(rng)
    return _to_image(low + t[..., None] * (high - low), rng)


def _photo_paths() -> list[Path]:
    import matplotlib
    import skimage

    data = Path(skimage.__file__).parent / "data"
    names = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png")
    grace = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return [data / name for name in names] + [grace]


@lru_cache(maxsize=8)
def _photograph(index: int) -> Image.Image:
    with Image.open(_photo_paths()[index]) as image:
        return image.convert("RGB")


def _photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    # A random crop of 40-100% of a photograph's area at the output's aspect ratio, maybe
    # mirrored: the augmentation classifiers are trained with, so the content stays recognisable.
    photo = _photograph(int(rng.integers(len(_photo_paths()))))
    aspect = width / height
    area = rng.uniform(0.4, 1.0) * photo.width * photo.height
    crop_w = min(photo.width, np.sqrt(area * aspect))
    crop_h = min(photo.height, crop_w / aspect)
    left = rng.uniform(0, photo.width - crop_w)
    top = rng.uniform(0, photo.height - crop_h)
    box = (left, top, left + crop_w, top + crop_h)
    image = photo.resize((width, height), Image.Resampling.BICUBIC, box=box)
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image


_SYNTHETIC: tuple[Callable[[np.random.Generator, int, int], Image.Image], ...] = (
    _gradient,
    _shapes,
    _texture,
    _grating,
)


def _kind(index: int) -> Callable[[np.random.Generator, int, int], Image.Image]:
    """Every fourth pool image is drawn, in turn of the four kinds; the others are photos."""
    return _SYNTHETIC[(index // 4) % len(_SYNTHETIC)] if index % 4 == 3 else _photo
