"""Neighbourhood collaborative filtering: ``item_knn`` and ``user_knn``.

Sparse top-K neighbourhoods over the weighted users x items matrix of
:mod:`recsdk.interactions`, with cosine, asymmetric cosine (Aiolli 2013) or Jaccard
similarity, optional TF-IDF/BM25 row weighting and shrinkage. Formulas and measured
costs: docs/algorithms/knn.md.
"""

from recsdk_plugins.knn.item import ItemKNN
from recsdk_plugins.knn.user import UserKNN

__all__ = ["ItemKNN", "UserKNN"]
