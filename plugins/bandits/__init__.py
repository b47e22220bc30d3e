"""Contextual bandits: ``linucb`` and ``thompson``, an exploration layer over the ranking.

One package for both plugins: :mod:`.policy` holds the numpy policy maths,
:mod:`.features` the context, :mod:`.state` the state shared by serving processes and
:mod:`.reranker` the hooks; :mod:`.linucb` and :mod:`.thompson` are the two plugins.
See docs/algorithms/bandits.md.
"""
