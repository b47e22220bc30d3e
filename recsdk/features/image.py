"""Image features of items, read from local files named by ``image_url``.

With ``weights_path`` set to a ResNet-18 ``state_dict`` (e.g. torchvision's ImageNet
weights, saved once by the shop), items get the network's 512-d embedding: shape,
object and style similarity. Without it the fallback is a fixed, training-free
colour-and-texture descriptor (a 4x4x4 RGB histogram, channel means and spreads,
and Sobel gradient magnitude and orientation histograms): it finds items of similar
colour and surface, nothing semantic (a red dress and a red mug look alike to it).
No image is ever fetched over the network: ``http(s)://`` URLs count as missing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import torch

from recsdk.features.cnn import EMBEDDING_DIM, load_backbone

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
COLOUR_BINS = 4
GRADIENT_BINS = 8
COLOUR_MOMENTS = 6  # mean and spread of each channel
FALLBACK_DIM = COLOUR_BINS**3 + COLOUR_MOMENTS + 2 * GRADIENT_BINS
FALLBACK_SIZE = 96


def local_path(url: object, root: str | Path | None = None) -> Path | None:
    """The local file an ``image_url`` names, or None for a remote or empty URL."""
    if not isinstance(url, str) or not url.strip():
        return None
    parsed = urlparse(url)
    if parsed.scheme in {"http", "https", "ftp", "s3", "gs", "data"}:
        return None
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(url)
    if not path.is_absolute() and root is not None:
        path = Path(root) / path
    return path


def read_rgb(path: Path, size: int) -> np.ndarray:
    """An image file as a ``size x size x 3`` uint8 array (PIL, bilinear resize)."""
    from PIL import Image

    with Image.open(path) as img:
        return np.array(img.convert("RGB").resize((size, size), Image.BILINEAR))


def colour_texture(batch: torch.Tensor) -> torch.Tensor:
    """Fallback descriptor of ``N x 3 x H x W`` images in [0, 1]; rows have unit length.

    Four parts, each scaled to unit length: a joint RGB histogram, the mean and
    spread of each channel (smooth where histogram bins have hard edges), and
    histograms of Sobel gradient strength and orientation. Histograms are
    square-rooted (Hellinger), so cosine compares distributions rather than being
    dominated by the largest bin.
    """
    n = batch.shape[0]
    levels = (batch.clamp(0, 1) * (COLOUR_BINS - 0.001)).long()
    codes = levels[:, 0] * COLOUR_BINS**2 + levels[:, 1] * COLOUR_BINS + levels[:, 2]
    colour = torch.zeros(n, COLOUR_BINS**3, device=batch.device)
    colour.scatter_add_(1, codes.flatten(1), torch.ones_like(codes.flatten(1), dtype=colour.dtype))
    grey = (0.299 * batch[:, 0] + 0.587 * batch[:, 1] + 0.114 * batch[:, 2]).unsqueeze(1)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
                         device=batch.device)
    gx = torch.nn.functional.conv2d(grey, sobel.view(1, 1, 3, 3), padding=1).flatten(1)
    gy = torch.nn.functional.conv2d(grey, sobel.t().reshape(1, 1, 3, 3), padding=1).flatten(1)
    magnitude = torch.sqrt(gx**2 + gy**2)
    # magnitude histogram on a log scale: flat, soft and sharp surfaces
    mag_bin = (torch.log1p(magnitude * 8) / np.log1p(32.0) * GRADIENT_BINS).long().clamp(
        0, GRADIENT_BINS - 1)
    strength = torch.zeros(n, GRADIENT_BINS, device=batch.device)
    strength.scatter_add_(1, mag_bin, torch.ones_like(magnitude))
    angle = torch.remainder(torch.atan2(gy, gx), np.pi)  # orientation, sign ignored
    ang_bin = (angle / np.pi * GRADIENT_BINS).long().clamp(0, GRADIENT_BINS - 1)
    orientation = torch.zeros(n, GRADIENT_BINS, device=batch.device)
    orientation.scatter_add_(1, ang_bin, magnitude)
    histograms = [torch.sqrt(p / p.sum(1, keepdim=True).clamp_min(1e-12))
                  for p in (colour, strength, orientation)]
    flat = batch.flatten(2)
    moments = torch.cat([flat.mean(2), flat.std(2)], dim=1)
    moments = moments / moments.norm(dim=1, keepdim=True).clamp_min(1e-12)
    out = torch.cat([histograms[0], moments, histograms[1], histograms[2]], dim=1)
    return out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)


class ImageEncoder:
    """Image vectors from local files: a pretrained ResNet-18, or the colour/texture
    fallback when no weights are configured. Missing images give all-zero rows."""

    name = "image"

    def __init__(self, weights_path: str | None = None, device: str = "cpu",
                 image_size: int = 224, batch_size: int = 32,
                 image_root: str | None = None) -> None:
        self.weights_path = weights_path
        self.device = device
        self.image_size = image_size
        self.batch_size = batch_size
        self.image_root = image_root

    @property
    def pretrained(self) -> bool:
        return self.weights_path is not None

    @property
    def dim(self) -> int:
        return EMBEDDING_DIM if self.pretrained else FALLBACK_DIM

    @property
    def version(self) -> str:
        if not self.pretrained:
            return f"colour-texture:2:{COLOUR_BINS}:{GRADIENT_BINS}:{FALLBACK_SIZE}"
        path = Path(str(self.weights_path))
        stat = path.stat()
        digest = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return f"resnet18:{self.image_size}:{digest.hexdigest()[:16]}"

    def fit(self, urls: Sequence[object]) -> ImageEncoder:
        if self.pretrained:
            self.model_ = load_backbone(str(self.weights_path), self.device)
        return self

    def content(self, urls: Sequence[object]) -> list[str]:
        """What identifies each image's content: its path, size and modification time."""
        out = []
        for url in urls:
            path = local_path(url, self.image_root)
            if path is None or not path.is_file():
                out.append("")
                continue
            stat = path.stat()
            out.append(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
        return out

    def transform(self, urls: Sequence[object]) -> np.ndarray:
        """One row per URL; ``problems_`` maps row numbers to why a row is zero."""
        if self.pretrained and not hasattr(self, "model_"):
            self.fit(urls)
        size = self.image_size if self.pretrained else FALLBACK_SIZE
        out = np.zeros((len(urls), self.dim), dtype=np.float32)
        self.problems_: dict[int, str] = {}
        pixels: list[np.ndarray] = []
        rows: list[int] = []
        for row, url in enumerate(urls):
            path = local_path(url, self.image_root)
            if path is None:
                if isinstance(url, str) and url.strip():
                    self.problems_[row] = f"{url!r} is not a local file (no downloads)"
                continue
            try:
                pixels.append(read_rgb(path, size))
                rows.append(row)
            except FileNotFoundError:
                self.problems_[row] = f"{path} does not exist"
            except Exception as exc:  # PIL raises several types for unreadable files
                self.problems_[row] = f"{path} is not a readable image ({exc})"
            if len(pixels) == self.batch_size:
                out[rows] = self._encode(np.stack(pixels))
                pixels, rows = [], []
        if pixels:
            out[rows] = self._encode(np.stack(pixels))
        if self.problems_:
            log.warning("%d of %d images unusable, e.g. %s", len(self.problems_), len(urls),
                        next(iter(self.problems_.values())))
        return out

    @torch.inference_mode()
    def _encode(self, pixels: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(pixels).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        if not self.pretrained:
            return colour_texture(batch).cpu().numpy()
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        vectors = self.model_((batch - mean) / std)
        vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return vectors.cpu().numpy().astype(np.float32)
