"""Image features: the colour/texture fallback, ResNet-18 weights loaded safely, bad files."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from recsdk.errors import ConfigurationError  # noqa: E402
from recsdk.features.cnn import ResNet18Backbone, load_backbone  # noqa: E402
from recsdk.features.image import FALLBACK_DIM, ImageEncoder, local_path  # noqa: E402


def _picture(path, colour, stripes=False, size=(48, 64)):
    pixels = np.zeros((*size, 3), dtype=np.uint8)
    pixels[:] = colour
    if stripes:
        pixels[:, ::4] = 255 - np.array(colour, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


class Payload:
    """Anything but tensors: torch.load(weights_only=True) must refuse it."""


def test_local_paths_only(tmp_path):
    assert local_path("https://cdn.example.com/a.jpg") is None
    assert local_path("") is None and local_path(None) is None
    assert local_path("file:///tmp/a%20b.png").as_posix() == "/tmp/a b.png"
    assert local_path("pics/a.png", tmp_path) == tmp_path / "pics" / "a.png"


def test_fallback_finds_similar_colours(tmp_path):
    red = _picture(tmp_path / "red.png", (200, 30, 30))
    red2 = _picture(tmp_path / "red2.png", (215, 45, 40))
    blue = _picture(tmp_path / "blue.png", (30, 30, 200))
    striped = _picture(tmp_path / "striped.png", (200, 30, 30), stripes=True)
    encoder = ImageEncoder()
    vectors = encoder.transform([red, red2, blue, striped])
    assert vectors.shape == (4, FALLBACK_DIM)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # colour
    assert sims[0, 1] > sims[0, 3] + 0.1  # texture: stripes change the gradients
    assert np.allclose(encoder.transform([red])[0], vectors[0])  # deterministic
    assert encoder.problems_ == {}


def test_unusable_images_give_zero_rows_and_say_why(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    good = _picture(tmp_path / "ok.png", (0, 128, 0))
    encoder = ImageEncoder()
    urls = [good, "https://cdn.example.com/x.jpg", str(broken), str(tmp_path / "gone.png"),
            None]
    vectors = encoder.transform(urls)
    assert vectors[0].any() and not vectors[1:].any()
    assert set(encoder.problems_) == {1, 2, 3}
    assert "no downloads" in encoder.problems_[1]
    assert "not a readable image" in encoder.problems_[2]
    assert "does not exist" in encoder.problems_[3]
    contents = encoder.content(urls)  # what identifies a file: path, size, mtime
    assert contents[0] and contents[2] and contents[0] != contents[2]
    assert contents[1] == contents[3] == contents[4] == ""


def test_resnet18_weights_load_with_weights_only(tmp_path):
    torch.manual_seed(0)
    model = ResNet18Backbone()
    state = model.state_dict()
    state["fc.weight"] = torch.zeros(1000, 512)  # a classifier, as torchvision saves it
    state["fc.bias"] = torch.zeros(1000)
    path = tmp_path / "resnet18.pt"
    torch.save(state, path)
    picture = _picture(tmp_path / "p.png", (120, 80, 40), stripes=True)
    encoder = ImageEncoder(weights_path=str(path), image_size=64)
    vectors = encoder.transform([picture, picture])
    assert vectors.shape == (2, 512) and np.allclose(vectors[0], vectors[1])
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)
    with torch.inference_mode():
        expected = model.eval()(_tensor(picture, 64))
    expected = (expected / expected.norm()).numpy()[0]
    assert np.allclose(vectors[0], expected, atol=1e-5)
    assert encoder.version.startswith("resnet18:64:")


def _tensor(path, size):
    from recsdk.features.image import IMAGENET_MEAN, IMAGENET_STD, read_rgb

    pixels = torch.from_numpy(read_rgb(path, size)).permute(2, 0, 1).float()[None] / 255
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
