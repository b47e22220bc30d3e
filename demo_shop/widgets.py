"""The recommendation widgets of the shop's pages, one function per placement.

Each asks recsdk through the extension's helpers (which never raise: a failure or a
slow answer is an empty degraded list) and joins the answer with the shop's own
products. A widget with nothing to show is hidden (None), except the home page's
"recommended for you", which falls back to the shop's own deals list so that the
front page is never bare. A served widget keeps its recsdk result, whose request id
and positions the templates put on the page for the feedback script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from demo_shop.catalogue import Catalogue, Product
from demo_shop.extensions import recsdk_ext
from recsdk.types import RecommendationResult, RecommendedItem

HOME_K = 8
SHELF_K = 4
PRODUCT_K = 6


@dataclass(frozen=True)
class Widget:
    """A titled row of products; ``result`` is None for the shop's own fallback list."""

    key: str
    title: str
    entries: list[tuple[Product, RecommendedItem | None]]
    result: RecommendationResult | None

    @property
    def experiment(self) -> str | None:
        return self.result.experiment if self.result is not None else None


def served(key: str, title: str, result: RecommendationResult,
           catalogue: Catalogue) -> Widget | None:
    """The widget of a recsdk answer: its items the shop can sell now, in its order."""
    products = catalogue.products(result.item_ids)
    entries = [(products[i.item_id], i) for i in result.items
               if i.item_id in products and products[i.item_id].in_stock]
    return Widget(key, title, entries, result) if entries else None


def recommended_for_you(catalogue: Catalogue) -> Widget:
    """Home: the ``home`` placement (under the A/B experiment), else the deals."""
    widget = served("recommended", "Recommended for you",
                    recsdk_ext.recommend("home", k=HOME_K), catalogue)
    if widget is not None:
        return widget
    return Widget("recommended", "Deals of the day",
                  [(p, None) for p in catalogue.deals(HOME_K)], None)


def trending(catalogue: Catalogue) -> Widget | None:
    """Home: the ``trending`` placement, served by the trending plugin alone."""
    return served("trending", "Trending now", recsdk_ext.recommend("trending", k=HOME_K),
                  catalogue)


def similar(product: Product, catalogue: Catalogue) -> Widget | None:
    """Product page: items like this one (``similar_items``)."""
    return served("similar", "Similar items",
                  recsdk_ext.similar_items(product.id, PRODUCT_K), catalogue)


def bought_together(product: Product, catalogue: Catalogue) -> Widget | None:
    """Product page: what goes with this product in a cart (co-occurrence)."""
    return served("bought-together", "Frequently bought together",
                  recsdk_ext.recommend("bought_together", k=SHELF_K, cart=[product.id]),
                  catalogue)


def complete_your_purchase(cart: Sequence[str], catalogue: Catalogue) -> Widget | None:
    """Cart page: the ``cart`` placement with the cart's items."""
    if not cart:
        return None
    return served("complete", "Complete your purchase",
                  recsdk_ext.recommend("cart", k=SHELF_K, cart=list(cart)), catalogue)


def top_picks(category_ids: Sequence[str], catalogue: Catalogue) -> Widget | None:
    """Category page: the visitor's best items among the category's (its shelf)."""
    shelf = catalogue.available_ids(category_ids)
    if not shelf:
        return None
    return served("top-picks", "Top picks for you",
                  recsdk_ext.recommend("category", k=SHELF_K, candidates=shelf), catalogue)
