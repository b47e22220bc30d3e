"""A demo storefront that integrates recsdk the way a shop's own Flask backend would.

It runs from the repository (``python -m demo_shop``, or ``make run``) and is not part
of recsdk's wheel. It uses recsdk only through its Flask extension
(:mod:`recsdk.flask_ext`) and its public Python API (loading data, training). See
``docs/demo_shop.md``.
"""

from demo_shop.app import close_shop, create_app

__all__ = ["close_shop", "create_app"]
