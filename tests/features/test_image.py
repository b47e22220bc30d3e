"""Image features: the colour/texture fallback, ResNet-18 weights loaded safely, bad files,
and image paths confined to the image root (regular files of bounded size only)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from recsdk.errors import ConfigurationError  # noqa: E402
from recsdk.features.cnn import ResNet18Backbone, load_backbone  # noqa: E402
from recsdk.features.image import (  # noqa: E402
    FALLBACK_DIM,
    ImageEncoder,
    ImageRefused,
    decode_rgb,
    image_file,
)


def _picture(path, colour, stripes=False, size=(48, 64)):
    pixels = np.zeros((*size, 3), dtype=np.uint8)
    pixels[:] = colour
    if stripes:
        pixels[:, ::4] = 255 - np.array(colour, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


class Payload:
    """Anything but tensors: torch.load(weights_only=True) must refuse it."""


def test_image_paths_are_confined_to_the_root(tmp_path):
    root = tmp_path / "images"
    (root / "pics").mkdir(parents=True)
    assert image_file("pics/a.png", root) == root.resolve() / "pics" / "a.png"
    assert image_file("", root) is None and image_file(None, root) is None
    (tmp_path / "secret.png").write_bytes(b"x")
    (root / "pics" / "out.png").symlink_to(tmp_path / "secret.png")
    refused = {
        "https://cdn.example.com/a.jpg": "never downloaded",
        "file:///etc/passwd": "file:// URLs are refused",
        "/etc/passwd": "absolute paths",
        "\\server\\share\\a.png": "absolute paths",
        "c:/images/a.png": "absolute paths",
        "../secret.png": "'..' is refused",
        "pics/../../secret.png": "'..' is refused",
        "pics\\..\\..\\secret.png": "'..' is refused",
        "pics/out.png": "resolves outside image_root",
        "pics/a\x00.png": "NUL",
    }
    for url, words in refused.items():
        with pytest.raises(ImageRefused, match=words):
            image_file(url, root)
    with pytest.raises(ImageRefused, match="no image_root is configured"):
        image_file("pics/a.png", None)


def _encoder_with(tmp_path, **kwargs):
    return ImageEncoder(image_root=str(tmp_path), **kwargs)


def test_fallback_finds_similar_colours(tmp_path):
    _picture(tmp_path / "red.png", (200, 30, 30))
    _picture(tmp_path / "red2.png", (215, 45, 40))
    _picture(tmp_path / "blue.png", (30, 30, 200))
    _picture(tmp_path / "striped.png", (200, 30, 30), stripes=True)
    red, red2, blue, striped = "red.png", "red2.png", "blue.png", "striped.png"
    encoder = _encoder_with(tmp_path)
    vectors = encoder.transform([red, red2, blue, striped])
    assert vectors.shape == (4, FALLBACK_DIM)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # colour
    assert sims[0, 1] > sims[0, 3] + 0.1  # texture: stripes change the gradients
    assert np.allclose(encoder.transform([red])[0], vectors[0])  # deterministic
    assert encoder.problems_ == {}


def test_unusable_images_give_zero_rows_and_say_why(tmp_path, caplog):
    (tmp_path / "broken.png").write_text("not an image")
    _picture(tmp_path / "ok.png", (0, 128, 0))
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "big.png")  # noise does not compress
    os.mkfifo(tmp_path / "pipe.png")  # opening it for reading would block training
    encoder = _encoder_with(tmp_path, max_bytes=2_000)
    urls = ["ok.png", "https://cdn.example.com/x.jpg", "broken.png", "gone.png", None,
            "pipe.png", "big.png", str(tmp_path / "ok.png"), "file://" + str(tmp_path)]
    vectors = encoder.transform(urls, labels=[f"sku-{i}" for i in range(len(urls))])
    assert vectors[0].any() and not vectors[1:].any()
    assert set(encoder.problems_) == {1, 2, 3, 5, 6, 7, 8}
    assert "never downloaded" in encoder.problems_[1]
    assert "not a readable image" in encoder.problems_[2]
    assert "does not exist" in encoder.problems_[3]
    assert "not a regular file" in encoder.problems_[5]
    assert "larger than 2000 bytes" in encoder.problems_[6]
    assert "absolute paths" in encoder.problems_[7]
    assert "file:// URLs are refused" in encoder.problems_[8]
    assert "item sku-1:" in caplog.text  # the log names the items
    contents = encoder.content(urls)  # what identifies a file: path, size, mtime
    assert contents[0] and contents[2] and contents[0] != contents[2]
    assert contents[1] == contents[3] == contents[4] == contents[5] == contents[7] == ""


def test_without_an_image_root_no_local_file_is_read(tmp_path):
    _picture(tmp_path / "ok.png", (0, 128, 0))
    encoder = ImageEncoder()
    vectors = encoder.transform([str(tmp_path / "ok.png"), "ok.png"])
    assert not vectors.any()
    assert all("no image_root is configured" in why for why in encoder.problems_.values())
    assert encoder.content([str(tmp_path / "ok.png")]) == [""]


def test_a_decompression_bomb_is_refused(tmp_path):
    Image.new("1", (10_000, 10_000)).save(tmp_path / "bomb.png")  # 100 Mpx in a few KB
    encoder = _encoder_with(tmp_path)
    assert not encoder.transform(["bomb.png"]).any()
    assert "not a readable image" in encoder.problems_[0]
    assert "decompression bomb" in encoder.problems_[0].lower()


def test_resnet18_weights_load_with_weights_only(tmp_path):
    torch.manual_seed(0)
    model = ResNet18Backbone()
    state = model.state_dict()
    state["fc.weight"] = torch.zeros(1000, 512)  # a classifier, as torchvision saves it
    state["fc.bias"] = torch.zeros(1000)
    path = tmp_path / "resnet18.pt"
    torch.save(state, path)
    picture = _picture(tmp_path / "p.png", (120, 80, 40), stripes=True)
    encoder = ImageEncoder(weights_path=str(path), image_size=64, image_root=str(tmp_path))
    vectors = encoder.transform(["p.png", "p.png"])
    assert vectors.shape == (2, 512) and np.allclose(vectors[0], vectors[1])
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)
    with torch.inference_mode():
        expected = model.eval()(_tensor(picture, 64))
    expected = (expected / expected.norm()).numpy()[0]
    assert np.allclose(vectors[0], expected, atol=1e-5)
    assert encoder.version.startswith("resnet18:64:")


def _tensor(path, size):
    from recsdk.features.image import IMAGENET_MEAN, IMAGENET_STD

    pixels = torch.from_numpy(decode_rgb(Path(path).read_bytes(), size)).permute(
        2, 0, 1).float()[None] / 255
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def test_weights_that_are_not_a_resnet18_state_dict_are_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="is not a file"):
        load_backbone(tmp_path / "missing.pt", "cpu")
    pickled = tmp_path / "pickled.pt"
    torch.save({"conv1.weight": Payload()}, pickled)
    with pytest.raises(ConfigurationError, match="weights_only=True"):
        load_backbone(pickled, "cpu")
    partial = tmp_path / "partial.pt"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, partial)
    with pytest.raises(ConfigurationError, match="missing"):
        load_backbone(partial, "cpu")
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ConfigurationError, match="not a state_dict"):
        load_backbone(tensor, "cpu")


def test_an_image_read_that_hangs_is_refused_after_the_timeout(tmp_path, monkeypatch):
    from recsdk.features import image

    release = threading.Event()

    def stuck(path, max_bytes):  # as a read from a hung network mount
        release.wait(30)
        return b""

    monkeypatch.setattr(image, "read_file", stuck)
    started = time.monotonic()
    with pytest.raises(image.ImageRefused, match=r"took more than 0\.2 s"):
        image.read_file_within(tmp_path / "slow.png", timeout_s=0.2)
    assert time.monotonic() - started < 5
    release.set()
