"""Reading the shop's catalogue: categories, product pages, listings with filters, search.

The shop's own tables are the catalogue of record (recsdk holds a copy it was given
through its ingestion API), so every page reads them here with plain SQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, and_, case, func, or_, select
from sqlalchemy.sql import ColumnElement

from demo_shop import db

#: Sort orders of listings: name -> what the select box says.
SORTS = {"featured": "Featured", "price_asc": "Price: low to high",
         "price_desc": "Price: high to low", "discount": "Biggest discount",
         "title": "Name"}
MAX_QUERY_LENGTH = 200
MAX_PRICE = 1_000_000.0


class BadQuery(ValueError):
    """A listing or search parameter the shop cannot use; the message names it."""


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    parent_id: str | None


@dataclass(frozen=True)
class Product:
    id: str
    title: str
    description: str
    category_id: str | None
    price: float
    original_price: float | None
    stock: int
    active: bool
    attributes: Mapping[str, Any]
    source: str

    @property
    def in_stock(self) -> bool:
        return self.active and self.stock > 0

    @property
    def discount_percent(self) -> int | None:
        """The discount against the original price, in whole percent (None: none)."""
        if self.original_price is None or self.original_price <= self.price:
            return None
        return round(100 * (1 - self.price / self.original_price))


@dataclass(frozen=True)
class ListingQuery:
    """Filters and order of a category page or a search, as validated from the URL."""

    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool = False
    sort: str = "featured"
    page: int = 1
    q: str = ""

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> ListingQuery:
        """Parse query arguments; a bad one raises :class:`BadQuery` naming it."""
        prices = {name: _price(args.get(name, ""), name) for name in ("min_price",
                                                                       "max_price")}
        low, high = prices["min_price"], prices["max_price"]
        if low is not None and high is not None and low > high:
            raise BadQuery(f"min_price ({low:g}) is above max_price ({high:g})")
        sort = args.get("sort", "") or "featured"
        if sort not in SORTS:
            raise BadQuery(f"sort must be one of {', '.join(SORTS)}; got {sort!r}")
        page_text = args.get("page", "") or "1"
        if not page_text.isdigit() or not 1 <= int(page_text) <= 10_000:
            raise BadQuery(f"page must be a whole number from 1 to 10000; got {page_text!r}")
        q = args.get("q", "").strip()
        if len(q) > MAX_QUERY_LENGTH:
            raise BadQuery(f"the search text is {len(q)} characters long; at most "
                           f"{MAX_QUERY_LENGTH}")
        return cls(low, high, args.get("in_stock", "") in ("1", "on", "true"), sort,
                   int(page_text), q)

    def args(self, **changes: Any) -> dict[str, Any]:
        """These filters as URL arguments (for links to other pages and orders)."""
        out = {"min_price": self.min_price, "max_price": self.max_price,
               "in_stock": 1 if self.in_stock else None, "sort": self.sort,
               "page": self.page, "q": self.q or None, **changes}
        return {k: (f"{v:g}" if isinstance(v, float) else v) for k, v in out.items()
                if v is not None and not (k == "sort" and v == "featured")
                and not (k == "page" and v == 1)}


def _price(text: str, name: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadQuery(f"{name} must be a number, got {text!r}") from None
    if not 0 <= value <= MAX_PRICE or math.isnan(value):
        raise BadQuery(f"{name} must be between 0 and {MAX_PRICE:g}, got {text!r}")
    return value


@dataclass(frozen=True)
class Page:
    products: list[Product]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass
class CategoryTree:
    """Every category, read once per request (a few hundred rows at most)."""

    by_id: dict[str, Category]
    children_of: dict[str | None, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for c in sorted(self.by_id.values(), key=lambda c: c.name):
            self.children_of.setdefault(c.parent_id, []).append(c.id)

    @property
    def roots(self) -> list[Category]:
        return [self.by_id[i] for i in self.children_of.get(None, [])]

    def children(self, category_id: str) -> list[Category]:
        return [self.by_id[i] for i in self.children_of.get(category_id, [])]

    def path(self, category_id: str | None) -> list[Category]:
        """Root first, ending at ``category_id`` (breadcrumbs)."""
        out: list[Category] = []
        node = category_id
        while node is not None and node in self.by_id and len(out) < 32:
            out.append(self.by_id[node])
            node = self.by_id[node].parent_id
        return out[::-1]

    def subtree(self, category_id: str) -> list[str]:
        """``category_id`` and every category below it."""
        out, todo = [], [category_id]
        while todo:
            node = todo.pop()
            out.append(node)
            todo += self.children_of.get(node, [])
        return out


class Catalogue:
    """Queries over the shop's products and categories."""

    def __init__(self, engine: Engine, page_size: int = 24) -> None:
        self.engine = engine
        self.page_size = page_size

    def tree(self) -> CategoryTree:
        t = db.categories
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.id, t.c.name, t.c.parent_id)).all()
        return CategoryTree({r.id: Category(r.id, r.name, r.parent_id) for r in rows})

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(db.products)).scalar_one())

    def product(self, item_id: str) -> Product | None:
        return self.products([item_id]).get(item_id)

    def products(self, item_ids: Iterable[str]) -> dict[str, Product]:
        """The products among ``item_ids`` that exist, by id."""
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return {}
        p = db.products
        found: dict[str, Product] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                rows = conn.execute(select(p).where(p.c.id.in_(ids[start : start + 500])))
                found.update((r.id, _product(r)) for r in rows)
        return found

    def in_order(self, item_ids: Sequence[str]) -> list[Product]:
        """The products of ``item_ids`` that exist, in that order."""
        found = self.products(item_ids)
        return [found[i] for i in item_ids if i in found]

    def listing(self, query: ListingQuery, category_ids: Sequence[str] | None = None
                ) -> Page:
        """A page of products in these categories (None: all) matching ``query``."""
        p = db.products
        where: list[ColumnElement[bool]] = [p.c.active.is_(True)]
        if category_ids is not None:
            where.append(p.c.category_id.in_(list(category_ids)))
        if query.q:
            where.append(or_(p.c.title.icontains(query.q, autoescape=True),
                             p.c.description.icontains(query.q, autoescape=True)))
        if query.min_price is not None:
            where.append(p.c.price >= query.min_price)
        if query.max_price is not None:
            where.append(p.c.price <= query.max_price)
        if query.in_stock:
            where.append(p.c.stock > 0)
        condition = and_(*where)
        discount = case((p.c.original_price > p.c.price, 1 - p.c.price / p.c.original_price),
                        else_=0.0)
        order = {
            "featured": [(p.c.stock > 0).desc(), p.c.title, p.c.id],
            "price_asc": [p.c.price, p.c.id],
            "price_desc": [p.c.price.desc(), p.c.id],
            "discount": [discount.desc(), p.c.id],
            "title": [p.c.title, p.c.id],
        }[query.sort]
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(p).where(condition)
                                 ).scalar_one()
            rows = conn.execute(select(p).where(condition).order_by(*order)
                                .limit(self.page_size)
                                .offset((query.page - 1) * self.page_size)).all()
        return Page([_product(r) for r in rows], int(total), query.page, self.page_size)

    def available_ids(self, category_ids: Sequence[str]) -> list[str]:
        """Ids of the products in these categories that can be bought now."""
        p = db.products
        with self.engine.connect() as conn:
            return list(conn.execute(select(p.c.id).where(
                p.c.category_id.in_(list(category_ids)), p.c.active.is_(True),
                p.c.stock > 0).order_by(p.c.id)).scalars())

    def deals(self, limit: int) -> list[Product]:
        """The biggest discounts in stock: the shop's own list, for when recsdk has none."""
        return self.listing(ListingQuery(in_stock=True, sort="discount")).products[:limit]


def _product(row: Any) -> Product:
    return Product(row.id, row.title, row.description or "", row.category_id,
                   float(row.price), None if row.original_price is None
                   else float(row.original_price), int(row.stock), bool(row.active),
                   row.attributes or {}, row.source)
