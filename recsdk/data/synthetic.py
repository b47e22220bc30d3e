"""A synthetic shop with planted user preferences, for tests, demos and benchmarks.

Real shop logs rarely come with the truth about what each user likes. This generator
plants it: every user prefers a few leaf categories (a sparse Dirichlet draw, shaped
by age and gender), and sessions follow those preferences through a funnel
(view > click > add_to_cart > purchase, then some ratings, reviews and returns).
Models can then be checked against :attr:`SyntheticShop.preferences`.

Everything is drawn from numpy Generators seeded by ``seed``: the same arguments give
the same shop. Events are generated vectorised in fixed blocks of sessions (each with
its own seed), so ten million events take about a minute and :meth:`iter_events`
can stream them without holding them all; the block size does not depend on the
chunk size, so streamed and materialised events are the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from recsdk.data.frames import ShopData
from recsdk.data.validation import TIMESTAMP_DTYPE
from recsdk.data.vocabulary import (
    ADJECTIVES,
    CITIES,
    COLOURS,
    SELLING_POINTS,
    Node,
    build_tree,
    pseudo_words,
    slug,
)
from recsdk.schemas import MAX_CLOCK_SKEW, MIN_TIMESTAMP

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "rating", "review", "return")
GENDERS = ("female", "male", "other")
GENDER_SHARES = (0.51, 0.46, 0.03)
AGE_BUCKETS = (25, 40, 60)  # upper bounds of the first three of four buckets
#: Relative activity by hour of the day (UTC): quiet nights, lunch and evening peaks.
HOUR_WEIGHTS = np.array([0.6, 0.3, 0.2, 0.15, 0.15, 0.25, 0.6, 1.2, 1.8, 2.2, 2.5, 2.8,
                         3.2, 3.0, 2.7, 2.6, 2.8, 3.2, 3.8, 4.4, 4.6, 4.0, 2.8, 1.4])
WEEKEND_BOOST = 1.25
#: Probabilities of 1..5 stars.
STAR_SHARES = np.array([0.04, 0.06, 0.15, 0.33, 0.42])
SESSIONS_PER_BLOCK = 20_000
MAX_LEAVES_PER_USER = 6
MICROS = 1_000_000


@dataclass(frozen=True)
class ShopParams:
    """Every knob of :func:`generate_shop`, as resolved (defaults filled in)."""

    n_events: int
    seed: int
    n_users: int
    n_items: int
    start: datetime
    days: int
    tree: tuple[int, int, int]
    leaves_per_user: float
    preference_concentration: float
    exploration: float
    zipf_exponent: float
    views_per_session: float
    p_click: float
    p_cart: float
    p_purchase: float
    p_rating: float
    p_review: float
    p_return: float
    discount_share: float
    out_of_stock_share: float
    inactive_share: float
    n_bots: int
    events_per_bot: int


@dataclass
class _Plan:
    """What event generation needs: ids, activity, preferences, item popularity."""

    user_ids: pd.Index
    item_ids: pd.Index
    user_cdf: np.ndarray
    pref_leaf: np.ndarray
    pref_cum: np.ndarray
    leaf_cdf: np.ndarray
    leaf_end: np.ndarray
    items_by_leaf: np.ndarray
    price: np.ndarray
    bots: np.ndarray
    start_s: int
    day_p: np.ndarray
    n_leaves: int


@dataclass
class SyntheticShop(ShopData):
    """A generated shop plus the truth that was planted in it.

    ``preferences``: ``user_id, category_id, weight``, the leaf categories each user
    prefers (weights sum to 1 per user); ``bot_user_ids``: users planted as bots.
    Event id columns are pandas categoricals (compact at ten million rows); use
    ``.astype(str)`` for plain text.
    """

    preferences: pd.DataFrame = field(default_factory=pd.DataFrame)
    bot_user_ids: list[str] = field(default_factory=list)
    params: ShopParams | None = None
    _plan: _Plan | None = field(default=None, repr=False)

    def within_leaf_popularity(self) -> np.ndarray:
        """The planted Zipf weight of each item (rows of ``items``) within its leaf
        category, summing to 1 per leaf: how the generator picks which item of a leaf
        a session views. Needs the generation plan (a shop made by generate_shop)."""
        if self._plan is None:
            raise ValueError("within_leaf_popularity needs a shop made by generate_shop")
        plan = self._plan
        counts = np.diff(plan.leaf_end, prepend=0)
        sorted_leaf = np.repeat(np.arange(len(counts)), counts)
        within = plan.leaf_cdf - sorted_leaf  # cumulative within the leaf
        first = np.r_[True, sorted_leaf[1:] != sorted_leaf[:-1]]
        weight_sorted = np.where(first, within, np.diff(within, prepend=0.0))
        weight = np.empty(len(plan.items_by_leaf))
        weight[plan.items_by_leaf] = weight_sorted
        return weight

    @property
    def n_events(self) -> int:
        return self.params.n_events if self.params is not None else len(self.events)

    def iter_events(self, chunk_size: int = 100_000) -> Iterator[pd.DataFrame]:
        """Events in chunks of ``chunk_size`` rows, generated on the fly when the shop
        was made with ``materialize=False``. Streamed chunks are ordered by time
        within each block of sessions, not across blocks."""
        if self._plan is None or self.params is None or len(self.events) == self.n_events:
            yield from super().iter_events(chunk_size)
            return
        buffer: list[pd.DataFrame] = []
        held = 0
        for block in _blocks(self._plan, self.params):
            buffer.append(block)
            held += len(block)
            while held >= chunk_size:
                frame = _concat(buffer)
                yield frame.iloc[:chunk_size].reset_index(drop=True)
                rest = frame.iloc[chunk_size:]
                if len(rest):  # else the held-over sessions' names pile up chunk by chunk
                    rest = rest.assign(
                        session_id=rest["session_id"].cat.remove_unused_categories())
                buffer, held = ([rest], len(rest)) if len(rest) else ([], 0)
        if held:
            yield _concat(buffer).reset_index(drop=True)


def generate_shop(
    n_events: int,
    seed: int = 0,
    *,
    n_users: int | None = None,
    n_items: int | None = None,
    start: datetime | None = None,
    days: int = 30,
    tree: tuple[int, int, int] = (5, 4, 3),
    leaves_per_user: float = 2.5,
    preference_concentration: float = 1.0,
    exploration: float = 0.1,
    zipf_exponent: float = 1.1,
    views_per_session: float = 5.0,
    p_click: float = 0.35,
    p_cart: float = 0.3,
    p_purchase: float = 0.5,
    p_rating: float = 0.3,
    p_review: float = 0.35,
    p_return: float = 0.05,
    discount_share: float = 0.25,
    out_of_stock_share: float = 0.08,
    inactive_share: float = 0.03,
    n_bots: int = 0,
    events_per_bot: int = 600,
    materialize: bool = True,
) -> SyntheticShop:
    """Generate a shop with exactly ``n_events`` events; deterministic for ``seed``.

    ``n_users`` defaults to ``n_events // 40`` (at least 20), ``n_items`` to
    ``n_events // 100`` (at least five per leaf). ``tree`` is (departments,
    categories per department, leaves per category). Each user prefers about
    ``leaves_per_user`` leaves with Dirichlet(``preference_concentration``) weights;
    a session browses one leaf, drawn from those preferences except with probability
    ``exploration`` (then any leaf). Items within a leaf are as popular as a Zipf law
    with ``zipf_exponent`` says. ``p_*`` are the funnel's conditional probabilities
    per viewed item (click | view, cart | click, purchase | cart, rating | purchase,
    review | rating, return | purchase). ``n_bots`` users each fire
    ``events_per_bot`` views within minutes, for cleaning to find.
    ``materialize=False`` keeps events out of memory: use :meth:`iter_events`.
    """
    if n_events < 1:
        raise ValueError(f"n_events must be at least 1, got {n_events}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    start = DEFAULT_START if start is None else start
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    if start < MIN_TIMESTAMP or start + timedelta(days=days) > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise ValueError(f"start {start.isoformat()} + {days} days must lie between "
                         "1990 and now: recsdk refuses events outside that range")
    n_leaves = tree[0] * tree[1] * tree[2]
    n_users = max(20, n_events // 40) if n_users is None else n_users
    n_items = max(5 * n_leaves, n_events // 100) if n_items is None else n_items
    if n_users < 1 or n_items < 1:
        raise ValueError("n_users and n_items must be positive")
    if n_bots * events_per_bot > n_events or n_bots >= n_users:
        raise ValueError(f"{n_bots} bots x {events_per_bot} events do not fit in {n_events} "
                         f"events and {n_users} users")
    for name, p in (("exploration", exploration), ("p_click", p_click), ("p_cart", p_cart),
                    ("p_purchase", p_purchase), ("p_rating", p_rating),
                    ("p_review", p_review), ("p_return", p_return),
                    ("discount_share", discount_share),
                    ("out_of_stock_share", out_of_stock_share),
                    ("inactive_share", inactive_share)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability, got {p}")
    params = ShopParams(
        n_events, seed, n_users, n_items, start, days, tuple(tree), leaves_per_user,
        preference_concentration, exploration, zipf_exponent, views_per_session, p_click,
        p_cart, p_purchase, p_rating, p_review, p_return, discount_share,
        out_of_stock_share, inactive_share, n_bots, events_per_bot)
    rng = np.random.default_rng([seed, 0])
    depts, cats, leaves = build_tree(params.tree, rng)
    categories = pd.DataFrame(
        [(n.id, n.name, n.parent_id) for n in (*depts, *cats, *leaves)],
        columns=["id", "name", "parent_id"])
    items, item_leaf, zipf_weight = _items(params, rng, depts, cats, leaves)
    users, groups = _users(params, rng)
    pref_leaf, pref_weight = _preferences(params, rng, groups, leaves)
    preferences = _preference_frame(users["id"].to_numpy(), pref_leaf, pref_weight, leaves)
    plan = _plan(params, rng, users, items, item_leaf, zipf_weight, pref_leaf, pref_weight)
    shop = SyntheticShop(categories=categories, items=items, users=users,
                         preferences=preferences,
                         bot_user_ids=[str(u) for u in plan.user_ids[plan.bots]],
                         params=params, _plan=plan)
    if materialize:
        shop.events = _concat(list(_blocks(plan, params)), sort=True)
    return shop


# ---- catalogue ---------------------------------------------------------------------------


def _items(p: ShopParams, rng: np.random.Generator, depts: list[Node], cats: list[Node],
           leaves: list[Node]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Items with leaf-specific text, log-normal prices per leaf, discounts and stock."""
    n_leaves = len(leaves)
    shares = rng.dirichlet(np.full(n_leaves, 4.0))
    first = np.arange(min(n_leaves, p.n_items))
    leaf = np.concatenate([first, rng.choice(n_leaves, p.n_items - len(first), p=shares)])
    leaf = rng.permutation(leaf)
    # Zipf popularity: a random rank within the item's leaf
    order = np.lexsort((rng.random(p.n_items), leaf))
    rank = np.empty(p.n_items, dtype=np.int64)
    counts = np.bincount(leaf, minlength=n_leaves)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(p.n_items) - np.repeat(starts, counts) + 1
    zipf_weight = rank.astype(float) ** -p.zipf_exponent
    median = np.exp(rng.uniform(np.log(5.0), np.log(400.0), n_leaves))
    price = np.maximum(0.5, np.round(median[leaf] * rng.lognormal(0.0, 0.35, p.n_items), 2))
    discounted = rng.random(p.n_items) < p.discount_share
    original = np.where(discounted,
                        np.round(price / (1 - rng.uniform(0.1, 0.5, p.n_items)), 2), np.nan)
    stock = rng.poisson(30, p.n_items)
    stock[rng.random(p.n_items) < p.out_of_stock_share] = 0
    active = rng.random(p.n_items) >= p.inactive_share
    dept_of = {c.id: c.parent_id for c in cats}
    cat_names = {c.id: c.name for c in cats}
    dept_names = {d.id: d.name for d in depts}
    brands = {d.id: [w.capitalize() for w in pseudo_words(rng, 6)] for d in depts}
    width = len(str(p.n_items))
    ids = [f"i{i:0{width}d}" for i in range(1, p.n_items + 1)]
    adj = rng.integers(0, len(ADJECTIVES), p.n_items)
    colour = rng.integers(0, len(COLOURS), p.n_items)
    brand_pick = rng.integers(0, 6, p.n_items)
    term_pick = np.argsort(rng.random((p.n_items, 5)), axis=1)[:, :3]
    model = rng.integers(2, 99, p.n_items)
    letter = rng.integers(0, 26, p.n_items)
    selling = rng.integers(0, len(SELLING_POINTS), p.n_items)
    titles, descriptions, tags, attributes = [], [], [], []
    for i in range(p.n_items):
        node = leaves[leaf[i]]
        dept = dept_of[node.parent_id]
        brand = brands[dept][brand_pick[i]]
        t1, t2, t3 = (node.terms[j % len(node.terms)] for j in term_pick[i])
        a, c = ADJECTIVES[adj[i]], COLOURS[colour[i]]
        titles.append(f"{a} {brand} {node.noun.title()} {chr(65 + letter[i])}{model[i]}")
        descriptions.append(
            f"{a} {node.noun} from {brand} with {t1} and {t2}. A {t3} {node.noun} in {c}, "
            f"part of our {cat_names[node.parent_id].lower()} range in "
            f"{dept_names[dept].lower()}. {SELLING_POINTS[selling[i]]}")
        tags.append([slug(node.name), t1, t2, c] + (["sale"] if discounted[i] else []))
        attributes.append({"brand": brand, "colour": c})
    items = pd.DataFrame({
        "id": ids, "title": titles, "description": descriptions,
        "category_id": [leaves[j].id for j in leaf], "tags": tags, "price": price,
        "original_price": original, "stock": stock, "active": active,
        "image_url": [f"https://images.example.com/items/{i}.jpg" for i in ids],
        "attributes": attributes,
    })
    return items, leaf, zipf_weight


def _users(p: ShopParams, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Users with age, gender, city and region; returns their demographic group."""
    age = np.clip(np.round(rng.normal(38, 13, p.n_users)), 16, 85).astype(int)
    gender = rng.choice(len(GENDERS), p.n_users, p=np.array(GENDER_SHARES))
    shares = np.array([c[2] for c in CITIES])
    city = rng.choice(len(CITIES), p.n_users, p=shares / shares.sum())
    width = len(str(p.n_users))
    ids = [f"u{i:0{width}d}" for i in range(1, p.n_users + 1)]
    attributes = [
        {"age": int(a), "gender": GENDERS[g], "city": CITIES[c][0], "region": CITIES[c][1]}
        for a, g, c in zip(age, gender, city, strict=True)
    ]
    group = gender * (len(AGE_BUCKETS) + 1) + np.searchsorted(AGE_BUCKETS, age, side="right")
    return pd.DataFrame({"id": ids, "attributes": attributes}), group


def _preferences(p: ShopParams, rng: np.random.Generator, groups: np.ndarray,
                 leaves: list[Node]) -> tuple[np.ndarray, np.ndarray]:
    """Each user's preferred leaves (padded with -1) and weights (sorted, summing to 1).

    The leaves are drawn without replacement (Gumbel top-k) from a prior that mixes a
    global leaf popularity with the department tastes of the user's age/gender group.
    """
    n_leaves = len(leaves)
    dept_index = {d: i for i, d in enumerate(dict.fromkeys(
        leaf.id.split("/")[0] for leaf in leaves))}
    leaf_dept = np.array([dept_index[leaf.id.split("/")[0]] for leaf in leaves])
    n_groups = len(GENDERS) * (len(AGE_BUCKETS) + 1)
    taste = rng.dirichlet(np.full(len(dept_index), 0.8), n_groups)
    popularity = rng.dirichlet(np.full(n_leaves, 3.0))
    k_max = min(MAX_LEAVES_PER_USER, n_leaves)
    k = np.clip(1 + rng.poisson(max(p.leaves_per_user - 1, 0.0), p.n_users), 1, k_max)
    pref_leaf = np.full((p.n_users, k_max), -1, dtype=np.int32)
    step = 50_000
    for lo in range(0, p.n_users, step):
        hi = min(lo + step, p.n_users)
        prior = np.log(taste[groups[lo:hi]][:, leaf_dept] * popularity + 1e-12)
        keys = prior + rng.gumbel(size=(hi - lo, n_leaves))
        pref_leaf[lo:hi] = np.argsort(-keys, axis=1)[:, :k_max]
    weight = rng.gamma(p.preference_concentration, size=(p.n_users, k_max)) + 1e-9
    weight[np.arange(k_max)[None, :] >= k[:, None]] = 0.0
    weight /= weight.sum(axis=1, keepdims=True)
    order = np.argsort(-weight, axis=1)
    weight = np.take_along_axis(weight, order, axis=1)
    pref_leaf = np.take_along_axis(pref_leaf, order, axis=1)
    pref_leaf[weight == 0] = -1
    return pref_leaf, weight


def _preference_frame(user_ids: np.ndarray, pref_leaf: np.ndarray, weight: np.ndarray,
                      leaves: list[Node]) -> pd.DataFrame:
    rows, cols = np.nonzero(pref_leaf >= 0)
    leaf_ids = np.array([leaf.id for leaf in leaves], dtype=object)
    return pd.DataFrame({"user_id": user_ids[rows],
                         "category_id": leaf_ids[pref_leaf[rows, cols]],
                         "weight": weight[rows, cols]})


def _plan(p: ShopParams, rng: np.random.Generator, users: pd.DataFrame, items: pd.DataFrame,
          item_leaf: np.ndarray, zipf_weight: np.ndarray, pref_leaf: np.ndarray,
          pref_weight: np.ndarray) -> _Plan:
    n_leaves = p.tree[0] * p.tree[1] * p.tree[2]
    activity = rng.lognormal(0.0, 1.0, p.n_users)
    bots = rng.choice(p.n_users, p.n_bots, replace=False) if p.n_bots else np.array([], int)
    activity[bots] = 0.0
    user_cdf = np.cumsum(activity) / activity.sum()
    pref_cum = np.cumsum(pref_weight, axis=1)
    pref_cum[pref_leaf < 0] = 1.0
    last = (pref_leaf >= 0).sum(axis=1) - 1
    pref_cum[np.arange(p.n_users), last] = 1.0
    # items sorted by leaf; within a leaf, a cumulative Zipf distribution shifted by
    # the leaf's number, so one searchsorted finds items of many leaves at once
    order = np.lexsort((-zipf_weight, item_leaf))
    sorted_leaf = item_leaf[order]
    w = zipf_weight[order]
    totals = np.bincount(sorted_leaf, weights=w, minlength=n_leaves)
    within = np.cumsum(w) - np.repeat(np.concatenate([[0], np.cumsum(totals)[:-1]]),
                                      np.bincount(sorted_leaf, minlength=n_leaves))
    leaf_cdf = sorted_leaf + within / totals[sorted_leaf]
    leaf_end = np.cumsum(np.bincount(sorted_leaf, minlength=n_leaves))
    start_s = int(p.start.timestamp())
    weekday = np.array([(p.start + timedelta(days=d)).weekday() for d in range(p.days)])
    day_p = np.where(weekday >= 5, WEEKEND_BOOST, 1.0)
    return _Plan(
        user_ids=pd.Index(users["id"].to_numpy(), dtype="str"),
        item_ids=pd.Index(items["id"].to_numpy(), dtype="str"),
        user_cdf=user_cdf, pref_leaf=pref_leaf, pref_cum=pref_cum, leaf_cdf=leaf_cdf,
        leaf_end=leaf_end, items_by_leaf=order, price=items["price"].to_numpy(float),
        bots=np.sort(bots), start_s=start_s, day_p=day_p / day_p.sum(), n_leaves=n_leaves)


# ---- events ------------------------------------------------------------------------------


def _blocks(plan: _Plan, p: ShopParams) -> Iterator[pd.DataFrame]:
    """Event frames block by block (bots first) until exactly ``n_events`` rows.

    A block that would overshoot keeps whole sessions in their (random) numbering
    order and cuts only the last one short, so the time window stays covered.
    """
    remaining = p.n_events
    if len(plan.bots):
        bots = _bot_events(plan, p)
        remaining -= len(bots)
        yield bots
    per_session = _events_per_session(p)
    block = 0
    while remaining > 0:
        wanted = int(np.ceil(remaining / per_session * 1.1)) + 8
        frame = _session_block(plan, p, block, min(SESSIONS_PER_BLOCK, wanted))
        block += 1
        if len(frame) > remaining:
            frame = frame.iloc[:remaining]
        remaining -= len(frame)
        yield frame.sort_values("timestamp", kind="stable", ignore_index=True)


def _events_per_session(p: ShopParams) -> float:
    """Expected events of one session with its follow-ups (for block sizes)."""
    buy = p.p_click * p.p_cart * p.p_purchase
    per_view = 1 + p.p_click + p.p_click * p.p_cart + buy * (
        1 + p.p_rating * (1 + p.p_review) + p.p_return)
    return max(p.views_per_session, 1.0) * per_view


def _session_block(plan: _Plan, p: ShopParams, block: int, n: int) -> pd.DataFrame:
    """``n`` sessions: views along a funnel, then ratings, reviews and returns.

    Rows come ordered by session number, then time (see :func:`_blocks`).
    """
    rng = np.random.default_rng([p.seed, 1, block])
    user = np.minimum(np.searchsorted(plan.user_cdf, rng.random(n), side="right"),
                      len(plan.user_cdf) - 1)
    pick = (plan.pref_cum[user] < rng.random(n)[:, None]).sum(axis=1)
    leaf = plan.pref_leaf[user, pick]
    explore = (rng.random(n) < p.exploration) | (leaf < 0)
    leaf[explore] = rng.integers(0, plan.n_leaves, int(explore.sum()))
    day = rng.choice(p.days, n, p=plan.day_p)
    hour = rng.choice(24, n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    start = plan.start_s + day * 86_400 + hour * 3_600 + rng.integers(0, 3_600, n)
    views = rng.geometric(1.0 / max(p.views_per_session, 1.0), n)
    session = np.repeat(np.arange(n), views)
    first = np.concatenate([[0], np.cumsum(views)[:-1]])
    gaps = rng.exponential(45.0, len(session))
    gaps[first] = 0.0
    elapsed = np.cumsum(gaps)
    elapsed -= elapsed[first][session]
    view_t = start[session] + elapsed
    view_leaf = leaf[session]
    pos = np.searchsorted(plan.leaf_cdf, view_leaf + rng.random(len(session)), side="right")
    pos = np.minimum(pos, plan.leaf_end[view_leaf] - 1)
    item = plan.items_by_leaf[pos]
    m = len(session)
    click = rng.random(m) < p.p_click
    cart = click & (rng.random(m) < p.p_cart)
    buy = cart & (rng.random(m) < p.p_purchase)
    rate = buy & (rng.random(m) < p.p_rating)
    review = rate & (rng.random(m) < p.p_review)
    ret = buy & (rng.random(m) < p.p_return)
    click_t = view_t + 2 + rng.exponential(8.0, m)
    cart_t = click_t + 5 + rng.exponential(30.0, m)
    buy_t = cart_t + 10 + rng.exponential(120.0, m)
    rate_t = buy_t + rng.uniform(1, 10, m) * 86_400
    review_t = rate_t + rng.uniform(10, 600, m)
    return_t = buy_t + rng.uniform(2, 20, m) * 86_400
    stars = (rng.choice(5, m, p=STAR_SHARES) + 1).astype(float)
    nan = np.full(m, np.nan)
    parts = [  # (mask, type code, time, value, in the session?)
        (np.ones(m, bool), 0, view_t, nan, True), (click, 1, click_t, nan, True),
        (cart, 2, cart_t, nan, True), (buy, 3, buy_t, plan.price[item], True),
        (rate, 4, rate_t, stars, False), (review, 5, review_t, stars, False),
        (ret, 6, return_t, nan, False),
    ]
    end_s = plan.start_s + p.days * 86_400
    number = block * SESSIONS_PER_BLOCK + session
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("u", "i", "t", "ts", "v", "s", "o")}
    for mask, code, when, value, in_session in parts:
        keep = mask & (when < end_s)
        cols["o"].append(number[keep])
        cols["u"].append(user[session][keep])
        cols["i"].append(item[keep])
        cols["t"].append(np.full(int(keep.sum()), code, np.int8))
        cols["ts"].append(np.round(when[keep] * MICROS).astype(np.int64))
        cols["v"].append(value[keep])
        cols["s"].append(number[keep] if in_session else np.full(int(keep.sum()), -1))
    arrays = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.lexsort((arrays["ts"], arrays.pop("o")))
    return _frame(plan, {k: v[order] for k, v in arrays.items()})


def _bot_events(plan: _Plan, p: ShopParams) -> pd.DataFrame:
    """Bots: bursts of views of random items, about two a second, one session each."""
    rng = np.random.default_rng([p.seed, 2])
    n = len(plan.bots) * p.events_per_bot
    bot = np.repeat(np.arange(len(plan.bots)), p.events_per_bot)
    start = plan.start_s + rng.integers(0, p.days * 86_400 - 3_600, len(plan.bots))
    offsets = np.cumsum(rng.exponential(0.5, n))
    first = np.arange(len(plan.bots)) * p.events_per_bot
    offsets -= offsets[first][bot]
    ts = np.round((start[bot] + offsets) * MICROS).astype(np.int64)
    arrays = {"u": plan.bots[bot], "i": rng.integers(0, len(plan.item_ids), n),
              "t": np.zeros(n, np.int8), "ts": ts, "v": np.full(n, np.nan),
              "s": -1 - (1 + bot)}  # bot sessions get their own names below
    order = np.argsort(ts, kind="stable")
    return _frame(plan, {k: v[order] for k, v in arrays.items()})


def _frame(plan: _Plan, a: dict[str, np.ndarray]) -> pd.DataFrame:
    """Arrays of codes to the ShopData event layout (ids as categoricals)."""
    n = len(a["u"])
    s = a["s"]
    used, inverse = np.unique(s[s != -1], return_inverse=True)
    codes = np.full(n, -1, dtype=np.int64)
    codes[s != -1] = inverse
    names = [f"bot{-x - 1}" if x < -1 else f"s{x:09d}" for x in used.tolist()]
    return pd.DataFrame({
        "user_id": pd.Categorical.from_codes(a["u"], categories=plan.user_ids),
        "session_id": pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype="str")),
        "item_id": pd.Categorical.from_codes(a["i"], categories=plan.item_ids),
        "type": pd.Categorical.from_codes(a["t"], categories=pd.Index(EVENT_TYPES, dtype="str")),
        "timestamp": pd.to_datetime(a["ts"], unit="us", utc=True).astype(TIMESTAMP_DTYPE),
        "value": a["v"],
        "event_id": pd.Categorical.from_codes(np.full(n, -1, np.int8),
                                              categories=pd.Index([], dtype="str")),
    })


#: categorical columns whose categories every frame of one shop shares
SHARED_CATEGORIES = ["user_id", "item_id", "type", "event_id"]


def _same_categories(frames: list[pd.DataFrame], column: str) -> pd.Categorical:
    """``column`` of all frames joined by their codes: pandas' own concat compares the
    categories by hashing them, which at a million users costs more than the events."""
    dtype = frames[0][column].dtype
    codes = np.concatenate([f[column].cat.codes.to_numpy() for f in frames])
    return pd.Categorical.from_codes(codes, dtype=dtype)


def _concat(frames: list[pd.DataFrame], sort: bool = False) -> pd.DataFrame:
    """Concatenate event frames, merging the per-block session categories."""
    if len(frames) == 1 and not sort:
        return frames[0]
    merged = {c: _same_categories(frames, c) for c in SHARED_CATEGORIES}
    merged["session_id"] = union_categoricals([f["session_id"] for f in frames],
                                              ignore_order=True)
    out = pd.concat([f.drop(columns=list(merged)) for f in frames], ignore_index=True)
    columns = list(frames[0].columns)
    for column in sorted(merged, key=columns.index):  # back in their places
        out.insert(columns.index(column), column, merged[column])
    if sort:
        order = np.argsort(out["timestamp"].astype("int64").to_numpy(), kind="stable")
        out = out.iloc[order].reset_index(drop=True)
    return out
