"""Features of users and items, and the pieces the ``interest`` and ``content`` plugins use.

* :mod:`recsdk.features.interest`: user interest profiles (demographics, decayed
  category and tag affinities, interaction and purchase statistics, user tags);
* :mod:`recsdk.features.next_category`: how well profiles predict the next category;
* :mod:`recsdk.features.items`: item feature blocks (text, category path, tags, price,
  image) and a table of scalar item features;
* :mod:`recsdk.features.feature_store`: versioned, content-hashed vectors in the
  database, recomputed only for items that changed;
* :mod:`recsdk.features.content`: the content plugin's fitted model (item blocks,
  profiles, weighted cosine scoring).

Heavy dependencies (torch, sentence-transformers) are imported only when a block that
needs them is used.
"""
