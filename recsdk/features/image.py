"""Image features of items, read from local files under the configured image root.

With ``weights_path`` set to a ResNet-18 ``state_dict`` (e.g. torchvision's ImageNet
weights, saved once by the shop), items get the network's 512-d embedding: shape,
object and style similarity. Without it the fallback is a fixed, training-free
colour-and-texture descriptor (a 4x4x4 RGB histogram, channel means and spreads,
and Sobel gradient magnitude and orientation histograms): it finds items of similar
colour and surface, nothing semantic (a red dress and a red mug look alike to it).

``image_url`` is stored data that anyone with write access sets, so training reads
only what the shop put under ``image_root``: a relative path that stays inside it, a
regular file (never a FIFO or a device, which could block training or have side
effects), at most ``max_bytes`` long. Absolute paths, ``file://`` URLs, ``..`` and
symbolic links leading out are refused; with no ``image_root`` no local file is read.
No image is ever fetched over the network: ``http(s)://`` URLs are skipped too. Every
refusal names the item (``problems_``) and leaves its row zero.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

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
#: Largest image file read at training, in bytes; larger files are skipped and reported.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: Seconds one image file may take to read (a hung network mount must not hang training).
IMAGE_READ_TIMEOUT_S = 10.0
#: Most problems named in the training log (all are in ``problems_``).
LOGGED_PROBLEMS = 5
REMOTE_SCHEMES = frozenset({"http", "https", "ftp", "ftps", "s3", "gs", "data"})


class ImageRefused(ValueError):
    """Why an item's ``image_url`` is not read (the message names the path)."""


def image_file(url: object, root: str | Path | None) -> Path | None:
    """The file under ``root`` that an ``image_url`` names; None when there is no URL.

    Raises :class:`ImageRefused` for a remote URL (never fetched), a ``file://`` URL,
    an absolute path or one with a scheme, a ``..`` component, a path that resolves
    outside ``root`` (through a symbolic link, say), or when ``root`` is not set.
    """
    if not isinstance(url, str) or not url.strip():
        return None
    scheme = urlparse(url).scheme.lower() if "\x00" not in url else ""
    if scheme in REMOTE_SCHEMES:
        raise ImageRefused(f"{url!r} is a remote URL: images are never downloaded")
    if scheme == "file":
        raise ImageRefused(f"{url!r}: file:// URLs are refused; give a path relative to "
                           "image_root")
    if root is None:
        raise ImageRefused(f"{url!r}: no image_root is configured, so no local image file "
                           "is read")
    if "\x00" in url:
        raise ImageRefused(f"{url!r} contains a NUL character")
    path = Path(url)
    if path.is_absolute() or url.startswith(("/", "\\")) or scheme:
        raise ImageRefused(f"{url!r}: absolute paths and URLs are refused; give a path "
                           "relative to image_root")
    if ".." in url.replace("\\", "/").split("/"):
        raise ImageRefused(f"{url!r}: '..' is refused in image paths")
    base = Path(root).resolve()
    target = (base / path).resolve()
    if not target.is_relative_to(base):
        raise ImageRefused(f"{url!r} resolves outside image_root (a symbolic link?)")
    return target


def read_file(path: Path, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; anything else is refused.

    The type is checked with ``stat`` before opening (a device is never opened), the
    file is opened non-blocking without following a link, and ``fstat`` confirms it
    is the file that was checked.
    """
    try:
        before = os.stat(path)
    except FileNotFoundError:
        raise ImageRefused(f"{path} does not exist") from None
    if not stat.S_ISREG(before.st_mode):
        raise ImageRefused(f"{path} is not a regular file (FIFOs, devices and folders are "
                           "never opened)")
    if before.st_size > max_bytes:
        raise ImageRefused(f"{path} is larger than {max_bytes} bytes")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as fh:
        after = os.fstat(fh.fileno())
        if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (
                before.st_dev, before.st_ino):
            raise ImageRefused(f"{path} changed while it was being opened")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageRefused(f"{path} is larger than {max_bytes} bytes")
    return data


def read_file_within(path: Path, max_bytes: int = MAX_IMAGE_BYTES,
                     timeout_s: float = IMAGE_READ_TIMEOUT_S) -> bytes:
    """:func:`read_file` in a daemon thread, refused when it takes over ``timeout_s``.

    A read stuck in the kernel cannot be interrupted; its thread is left behind (as a
    daemon it never blocks the process from exiting) and the item gets the fallback.
    """
    box: dict[str, object] = {}

    def read() -> None:
        try:
            box["data"] = read_file(path, max_bytes)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=read, name="recsdk-image-read", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise ImageRefused(f"{path} took more than {timeout_s:g} s to read")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["data"]  # type: ignore[return-value]


def decode_rgb(data: bytes, size: int) -> np.ndarray:
    """Image bytes as a ``size x size x 3`` uint8 array (PIL, bilinear resize).

    PIL's decompression-bomb warning is an error here: a small file that decodes to
    a huge bitmap is refused like a large file.
    """
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as img:
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
    fallback when no weights are configured. Missing or refused images give all-zero
    rows; ``image_root`` is the only folder files are read from (none: no file is)."""

    name = "image"

    def __init__(self, weights_path: str | None = None, device: str = "cpu",
                 image_size: int = 224, batch_size: int = 32,
                 image_root: str | None = None, max_bytes: int = MAX_IMAGE_BYTES) -> None:
        self.weights_path = weights_path
        self.device = device
        self.image_size = image_size
        self.batch_size = batch_size
        self.image_root = image_root
        self.max_bytes = max_bytes

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
        stat_ = path.stat()
        digest = hashlib.sha256(f"{path.resolve()}:{stat_.st_size}:{stat_.st_mtime_ns}".encode())
        return f"resnet18:{self.image_size}:{digest.hexdigest()[:16]}"

    def fit(self, urls: Sequence[object]) -> ImageEncoder:
        if self.pretrained:
            self.model_ = load_backbone(str(self.weights_path), self.device)
        return self

    def content(self, urls: Sequence[object]) -> list[str]:
        """What identifies each image's content: its path, size and modification time.

        Empty for no image and for a refused one (nothing outside the root is stat'ed).
        """
        out = []
        for url in urls:
            try:
                path = image_file(url, self.image_root)
                info = None if path is None else os.stat(path)
            except (ImageRefused, OSError):
                path = info = None
            if path is None or info is None or not stat.S_ISREG(info.st_mode):
                out.append("")
            else:
                out.append(f"{path}:{info.st_size}:{info.st_mtime_ns}")
        return out

    def transform(self, urls: Sequence[object], labels: Sequence[str] | None = None
                  ) -> np.ndarray:
        """One row per URL; ``problems_`` maps row numbers to why a row is zero.

        ``labels`` (item ids) name the rows in the logged warning.
        """
        if self.pretrained and not hasattr(self, "model_"):
            self.fit(urls)
        size = self.image_size if self.pretrained else FALLBACK_SIZE
        out = np.zeros((len(urls), self.dim), dtype=np.float32)
        self.problems_: dict[int, str] = {}
        pixels: list[np.ndarray] = []
        rows: list[int] = []
        for row, url in enumerate(urls):
            try:
                path = image_file(url, self.image_root)
                if path is None:
                    continue
                data = read_file_within(path, self.max_bytes)
            except ImageRefused as exc:
                self.problems_[row] = str(exc)
                continue
            except OSError as exc:
                self.problems_[row] = f"{url!r} cannot be read ({exc.strerror or exc})"
                continue
            try:
                pixels.append(decode_rgb(data, size))
                rows.append(row)
            except Exception as exc:  # PIL raises several types for unreadable files
                self.problems_[row] = f"{path} is not a readable image ({exc})"
            if len(pixels) == self.batch_size:
                out[rows] = self._encode(np.stack(pixels))
                pixels, rows = [], []
        if pixels:
            out[rows] = self._encode(np.stack(pixels))
        if self.problems_:
            named = [f"item {labels[r] if labels is not None else r}: {why}"
                     for r, why in list(self.problems_.items())[:LOGGED_PROBLEMS]]
            log.warning("%d of %d item images not used: %s", len(self.problems_), len(urls),
                        "; ".join(named))
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
