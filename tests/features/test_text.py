"""Text features: TF-IDF state round trip, MiniLM offline embeddings, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsdk.errors import ConfigurationError, NotTrainedError
from recsdk.features.text import (
    TfidfTextEncoder,
    item_texts,
    load_sentence_model,
    make_text_encoder,
)

from .conftest import ITEMS


def test_item_texts_join_present_fields():
    frame = pd.DataFrame({"title": ["Hat", None, " "], "description": ["warm", "cap", None]})
    assert item_texts(frame) == ["Hat. warm", "cap", ""]
    assert item_texts(frame, ["brand"]) == ["", "", ""]


def test_tfidf_ranks_shared_words_and_round_trips():
    texts = item_texts(ITEMS)
    encoder = TfidfTextEncoder().fit(texts)
    matrix = encoder.transform(texts)
    sims = (matrix @ matrix.T).toarray()
    first = ITEMS.index[ITEMS["id"] == "s1"][0]
    order = ITEMS["id"].to_numpy()[np.argsort(-sims[first])]
    assert order[1] == "s2"  # the other running shoe
    restored = TfidfTextEncoder().load_state(encoder.state())
    assert abs(restored.transform(texts) - matrix).max() == 0
    assert restored.version == encoder.version
    other = TfidfTextEncoder().fit(texts[:4])
    assert other.version != encoder.version


def test_tfidf_refuses_what_it_cannot_use():
    with pytest.raises(NotTrainedError):
        TfidfTextEncoder().transform(["a"])
    with pytest.raises(ValueError, match="no words in 2 item texts"):
        TfidfTextEncoder().fit(["", "the and of"])
    with pytest.raises(ConfigurationError, match="tfidf"):
        make_text_encoder("word2vec")


def test_minilm_matches_paraphrases(minilm):
    vectors = minilm.transform(["running sneakers", "jogging shoes", "bluetooth speaker", ""])
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, atol=1e-5)
    assert not vectors[3].any()  # an empty text is unknown, not "the empty sentence"
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert minilm.version.startswith("minilm:") and minilm.transform([]).shape == (0, 384)
    again = minilm.transform(["running sneakers"])
    assert np.allclose(again[0], vectors[0], atol=1e-5)  # deterministic


def test_minilm_needs_a_model_directory(tmp_path):
    with pytest.raises(ConfigurationError, match=r"modules\.json"):
        load_sentence_model(str(tmp_path), "cpu")
