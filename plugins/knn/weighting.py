"""Row weighting of the vectors a neighbourhood compares: none, TF-IDF or BM25.

The compared vectors are the *documents* and the other axis the *terms*: for
``item_knn`` each item is a document over users, for ``user_knn`` each user is a
document over items. Weighting happens before the similarity, so a heavy user (who
co-occurs with everything) or a blockbuster item counts less (Robertson et al., BM25).

With ``x_dt`` the event weight of term ``t`` in document ``d``, ``N`` the number of
non-empty training documents, ``df_t`` the number of them holding ``t``,
``|d| = sum_t x_dt`` and ``avgdl`` the mean ``|d|`` over non-empty documents:

* ``none``:  ``w_dt = x_dt``
* ``tfidf``: ``w_dt = x_dt * idf_t``
* ``bm25``:  ``w_dt = x_dt (k1 + 1) / (x_dt + k1 (1 - b + b |d| / avgdl)) * idf_t``

with ``idf_t = log(N / df_t)`` (0 for a term in every document, and for one in none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

ROW_WEIGHTINGS = ("none", "bm25", "tfidf")


@dataclass(frozen=True)
class RowWeighting:
    """A weighting fitted on training documents, applicable to new ones (fold-in)."""

    kind: str
    idf: np.ndarray
    avg_length: float
    k1: float = 1.2
    b: float = 0.75

    @classmethod
    def fit(cls, docs: sp.csr_matrix, kind: str, k1: float = 1.2,
            b: float = 0.75) -> RowWeighting:
        """Term statistics of ``docs`` (documents x terms); recomputed, never stored."""
        if kind not in ROW_WEIGHTINGS:
            raise ValueError(f"unknown row weighting {kind!r}; choose from {ROW_WEIGHTINGS}")
        lengths = np.asarray(docs.sum(axis=1)).ravel()
        nonempty = lengths > 0
        n_docs = int(nonempty.sum())
        df = np.bincount(docs.indices, minlength=docs.shape[1]).astype(np.float64)
        idf = np.zeros(docs.shape[1], dtype=np.float64)
        present = df > 0
        idf[present] = np.log(n_docs / df[present])
        avg = float(lengths[nonempty].mean()) if n_docs else 1.0
        return cls(kind, idf, avg, float(k1), float(b))

    def apply(self, docs: sp.csr_matrix) -> sp.csr_matrix:
        """``docs`` (documents x the fitted terms) weighted; a new float64 CSR matrix."""
        out = sp.csr_matrix(docs, dtype=np.float64, copy=True)
        if self.kind == "none" or out.nnz == 0:
            return out
        terms = out.indices
        if self.kind == "tfidf":
            out.data *= self.idf[terms]
        else:
            lengths = np.asarray(out.sum(axis=1)).ravel()
            norm = 1.0 - self.b + self.b * lengths / self.avg_length
            per_entry = np.repeat(norm, np.diff(out.indptr))
            x = out.data
            out.data = x * (self.k1 + 1.0) / (x + self.k1 * per_entry) * self.idf[terms]
        out.eliminate_zeros()
        return out
