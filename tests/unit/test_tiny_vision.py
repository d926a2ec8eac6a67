"""The tiny vision-language model (harness.model.tiny_vision) and the image-token count the audit relies on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from harness.config.model import TinyModelSpec, TinyVisionSpec
from harness.load.synthetic import png_data_url, vision_support
from harness.load.vision import ImagePromptCounter
from harness.model.tiny import ensure_tiny_model

TEXT = {"hidden-size": 64, "num-layers": 1, "num-heads": 2, "intermediate-size": 128, "vocab-size": 400}
VISION = {"image-size": 64, "patch-size": 16, "hidden-size": 32, "num-layers": 1, "num-heads": 2, "longest-edge": 128}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = TinyModelSpec.model_validate(TEXT | {"vision": VISION})
    return ensure_tiny_model(spec, tmp_path_factory.mktemp("cache"))


def test_a_vision_model_is_an_idefics3_around_the_tiny_llama(model: Path) -> None:
    config = json.loads((model / "config.json").read_text())
    assert config["architectures"] == ["Idefics3ForConditionalGeneration"]
    assert config["text_config"]["hidden_size"] == 64
    assert config["vision_config"]["image_size"] == 64
    assert vision_support(model) is None


def test_the_text_models_digest_is_unchanged_by_the_vision_key() -> None:
    text = TinyModelSpec.model_validate(TEXT)
    assert text.digest() != TinyModelSpec.model_validate(TEXT | {"vision": VISION}).digest()
    assert "vision" not in text.model_dump(exclude_none=True)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"image-size": 60}, "image-size must be patch-size x a multiple of scale-factor"),
        ({"longest-edge": 100}, "longest-edge must be a multiple of image-size"),
    ],
)
def test_a_vision_section_that_cannot_tile_is_refused(section: dict[str, int], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TinyVisionSpec.model_validate(VISION | section)


def test_the_image_token_count_follows_the_tiles(model: Path) -> None:
    counter = ImagePromptCounter(model)
    rng = np.random.default_rng(0)
    # 96x128 is resized to fit 128: 2 x 2 tiles and the whole image, 4 <image> tokens each, and their markers.
    square = counter.count("What is in the picture?", (png_data_url(96, 128, rng),))
    # 32x200 becomes 20x128: one row of 2 tiles and the whole image.
    strip = counter.count("What is in the picture?", (png_data_url(32, 200, rng),))
    assert square.text == strip.text
    assert square.image > strip.image >= 3 * 4
    image_id = counter.processor.tokenizer.convert_tokens_to_ids("<image>")
    rendered = counter._render([{"type": "text", "text": "x"}, {"type": "image"}])
    ids = counter.processor(text=rendered, images=[counter_image(96, 128)], add_special_tokens=False)["input_ids"][0]
    assert list(ids).count(image_id) == 5 * 4


def counter_image(height: int, width: int) -> object:
    from PIL import Image

    return Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8))
