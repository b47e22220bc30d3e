"""Matrix factorisation plugins on the ``implicit`` library: ``als``, ``bpr``, ``lmf``.

``bpr`` also has a numpy mini-batch Adam solver of its own (``adam_bpr``, its
default). All three learn from the same weighted users x items matrix (:mod:`recsdk.interactions`),
fold a user's newer history in at request time, score similar items by the cosine of
item factors, and can retrieve candidates through a faiss index built at training
(:mod:`recsdk.retrieval`). One module per idea: ``params`` (schemas), ``foldin`` (the
per-user solves), ``base`` (hooks and state), and one module per model.
"""

from recsdk_plugins.factorization.als import ALS
from recsdk_plugins.factorization.bpr import BPR
from recsdk_plugins.factorization.lmf import LMF

__all__ = ["ALS", "BPR", "LMF"]
