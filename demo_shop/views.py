"""The storefront's pages: home, categories, search, products, cart, checkout, orders,
login. Each page that shows or sells a product tells recsdk (view, add_to_cart,
remove_from_cart, purchase with its revenue, rating and review) through the extension's
``track``; an add-to-cart or a purchase of a product reached from a recommended list is
also credited to that list (:mod:`demo_shop.attribution`).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from demo_shop import accounts, attribution, widgets
from demo_shop.cart import CartError, add, cart_for, merge_into_account, quantity_of
from demo_shop.catalogue import SORTS, BadQuery, ListingQuery
from demo_shop.csrf import FIELD, check_csrf
from demo_shop.extensions import current_shop, recsdk_ext
from demo_shop.images import placeholder_svg
from demo_shop.orders import OrderLine, OutOfStock, order_of, orders_of, place_order
from demo_shop.reviews import ReviewError, read_review

log = logging.getLogger(__name__)

bp = Blueprint("shop", __name__)
bp.before_request(check_csrf)

Page = str | tuple[str, int] | BaseResponse


def _cart() -> Any:
    return cart_for(current_shop().engine, accounts.current_account_id())


def _listing_query() -> tuple[ListingQuery, str | None]:
    """The URL's filters, or the defaults and the problem to show (answered 400)."""
    try:
        return ListingQuery.from_args(request.args), None
    except BadQuery as exc:
        return ListingQuery(q=request.args.get("q", "")[:200]), str(exc)


# ---- browsing --------------------------------------------------------------------------


@bp.get("/")
def home() -> Page:
    catalogue = current_shop().catalogue
    return render_template("home.html",
                           recommended=widgets.recommended_for_you(catalogue),
                           trending=widgets.trending(catalogue))


@bp.get("/c/<path:category_id>")
def category(category_id: str) -> Page:
    catalogue = current_shop().catalogue
    tree = catalogue.tree()
    if category_id not in tree.by_id:
        abort(404, f"There is no category {category_id!r}.")
    query, problem = _listing_query()
    subtree = tree.subtree(category_id)
    page = catalogue.listing(query, subtree)
    picks = widgets.top_picks(subtree, catalogue)
    html = render_template("category.html", category=tree.by_id[category_id],
                           path=tree.path(category_id), children=tree.children(category_id),
                           page=page, query=query, problem=problem, sorts=SORTS,
                           picks=picks)
    return (html, 400) if problem else html


@bp.get("/search")
def search() -> Page:
    query, problem = _listing_query()
    page = current_shop().catalogue.listing(query) if query.q and not problem else None
    html = render_template("search.html", page=page, query=query, problem=problem,
                           sorts=SORTS)
    return (html, 400) if problem else html


@bp.get("/p/<path:item_id>")
def product(item_id: str) -> Page:
    catalogue = current_shop().catalogue
    found = catalogue.product(item_id)
    if found is None or not found.active:
        abort(404, f"There is no product {item_id!r}.")
    recsdk_ext.track("view", found.id)
    _note_source(found.id)
    tree = catalogue.tree()
    return render_template("product.html", product=found, path=tree.path(found.category_id),
                           similar=widgets.similar(found, catalogue),
                           together=widgets.bought_together(found, catalogue))


def _note_source(item_id: str) -> None:
    """Remember the recommended list this product page was reached from (``rid`` and
    ``pos`` in the URL) once recsdk confirms it served that list to this visitor."""
    try:
        source = attribution.parse(request.args.get("rid"), request.args.get("pos"))
        if source is None:
            return
        attribution.verify(source, item_id, recsdk_ext.identity())
    except attribution.BadSource as exc:
        log.info("product %r: not credited to a list: %s", item_id, exc)
        return
    except Exception as exc:  # recsdk unreachable: the page matters more than the credit
        log.warning("product %r: could not check its list: %s: %s", item_id,
                    type(exc).__name__, exc)
        return
    attribution.remember(item_id, source)


@bp.post("/p/<path:item_id>/review")
def review(item_id: str) -> Page:
    """A rating (1 to 5 stars) and an optional review text: recsdk events of the
    visitor (``rating``, and ``review`` with the text), and rating feedback to the list
    the product was reached from."""
    found = current_shop().catalogue.product(item_id)
    if found is None or not found.active:
        abort(404, f"There is no product {item_id!r}.")
    back = url_for("shop.product", item_id=found.id)
    try:
        stars, text = read_review(request.form.get("rating"), request.form.get("review"))
    except ReviewError as exc:
        flash(str(exc), "error")
        return redirect(back + "#review")
    recsdk_ext.track("rating", found.id, value=float(stars))
    if text:
        recsdk_ext.track("review", found.id, value=float(stars), context={"text": text})
    source = attribution.source_of(found.id)
    if source is not None:
        attribution.credit(source, found.id, "rating", value=float(stars),
                           user_id=recsdk_ext.identity().user_id)
    flash(f"Thank you for rating “{found.title}” {stars} of 5"
          f"{' and for your review' if text else ''}.", "success")
    return redirect(back + "#review")


@bp.get("/favicon.ico")
def favicon() -> Response:
    """The shop's icon, which browsers ask for on every site (an SVG, drawn here)."""
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" '
           'height="32" rx="7" fill="#3b5bdb"/><text x="16" y="23" font-size="20" '
           'font-family="sans-serif" font-weight="700" text-anchor="middle" '
           'fill="#fff">r</text></svg>')
    response = Response(svg, mimetype="image/svg+xml")
    response.cache_control.public = True
    response.cache_control.max_age = 86_400
    return response


@bp.get("/img/<path:item_id>.svg")
def image(item_id: str) -> Response:
    catalogue = current_shop().catalogue
    found = catalogue.product(item_id)
    if found is None:
        abort(404, f"There is no product {item_id!r}.")
    path = catalogue.tree().path(found.category_id)
    department = path[0] if path else None
    svg = placeholder_svg(found.title, department.id if department else "",
                          department.name if department else "")
    response = Response(svg, mimetype="image/svg+xml")
    response.cache_control.public = True
    response.cache_control.max_age = 86_400
    return response


# ---- cart and checkout -------------------------------------------------------------------


@bp.get("/cart")
def cart() -> Page:
    catalogue = current_shop().catalogue
    lines = _cart().lines()
    products = catalogue.products(lines)
    rows = [(products[i], q) for i, q in lines.items() if i in products]
    total = round(sum(p.price * q for p, q in rows), 2)
    return render_template("cart.html", rows=rows, total=total,
                           complete=widgets.complete_your_purchase(list(lines), catalogue))


@bp.post("/cart/add")
def cart_add() -> Page:
    item_id = request.form.get("item_id", "")
    found = current_shop().catalogue.product(item_id)
    if found is None or not found.active:
        abort(400, f"There is no product {item_id!r} to add to the cart.")
    back = url_for("shop.product", item_id=found.id)
    source = attribution.source_of(found.id)
    try:
        quantity = quantity_of(request.form.get("quantity"))
        if not found.in_stock:
            raise CartError(f"“{found.title}” is out of stock.")
        in_cart = add(_cart(), found.id, quantity, source)
    except CartError as exc:
        flash(str(exc), "error")
        return redirect(back)
    value = round(found.price * quantity, 2)
    recsdk_ext.track("add_to_cart", found.id, value=value)
    if source is not None:  # the shop's price, never one a page sent
        attribution.credit(source, found.id, "add_to_cart", value=value,
                           user_id=recsdk_ext.identity().user_id)
    flash(f"Added “{found.title}” to your cart ({in_cart} in the cart).", "success")
    return redirect(url_for("shop.cart"))


@bp.post("/cart/update")
def cart_update() -> Page:
    item_id = request.form.get("item_id", "")
    basket = _cart()
    if item_id not in basket.lines():
        abort(400, f"Product {item_id!r} is not in your cart.")
    text = request.form.get("quantity", "")
    try:
        quantity = 0 if text.strip() == "0" else quantity_of(text)
    except CartError as exc:
        flash(str(exc), "error")
        return redirect(url_for("shop.cart"))
    basket.set(item_id, quantity)
    if quantity == 0:
        recsdk_ext.track("remove_from_cart", item_id)
    return redirect(url_for("shop.cart"))


@bp.post("/cart/remove")
def cart_remove() -> Page:
    item_id = request.form.get("item_id", "")
    basket = _cart()
    if item_id in basket.lines():
        basket.set(item_id, 0)
        recsdk_ext.track("remove_from_cart", item_id)
    return redirect(url_for("shop.cart"))


@bp.route("/checkout", methods=["GET", "POST"])
@accounts.login_required
def checkout() -> Page:
    shop = current_shop()
    account_id = accounts.current_account_id()
    assert account_id is not None
    basket = _cart()
    lines = basket.lines()
    if not lines:
        flash("Your cart is empty.", "info")
        return redirect(url_for("shop.cart"))
    products = shop.catalogue.products(lines)
    rows = [(products[i], q) for i, q in lines.items() if i in products]
    total = round(sum(p.price * q for p, q in rows), 2)
    if request.method == "GET":
        return render_template("checkout.html", rows=rows, total=total, problem=None)
    try:
        order, stock = place_order(shop.engine, account_id, lines, basket.sources())
    except OutOfStock as exc:
        return render_template("checkout.html", rows=rows, total=total,
                               problem=str(exc)), 409
    basket.clear()
    _after_order(order.id, account_id, order.lines, stock)
    flash(f"Thank you! Order {order.id} is placed.", "success")
    return redirect(url_for("shop.order", order_id=order.id))


def _after_order(order_id: int, account_id: str, lines: list[OrderLine],
                 stock: dict[str, int]) -> None:
    """Tell recsdk: the new stock (sold-out items leave its lists), the purchases, each
    with its revenue and an event id that makes a retry harmless, and, for each line
    reached from a recommended list, a purchase feedback row on that list with the
    line's revenue (the experiment report counts such a purchase once, not as feedback
    and event both)."""
    try:
        recsdk_ext.sdk().upsert_items([{"id": i, "stock": s} for i, s in stock.items()])
    except Exception:  # the order stands; recsdk catches up at the next catalogue load
        log.exception("could not pass the new stock of order %s to recsdk", order_id)
    for line in lines:
        recsdk_ext.track("purchase", line.item_id, value=line.total,
                         event_id=f"order-{order_id}-{line.item_id}")
        if line.source is not None:
            attribution.credit(line.source, line.item_id, "purchase", value=line.total,
                               user_id=account_id)
    attribution.forget([line.item_id for line in lines])


@bp.get("/orders")
@accounts.login_required
def orders() -> Page:
    account_id = accounts.current_account_id()
    assert account_id is not None
    return render_template("orders.html", orders=orders_of(current_shop().engine, account_id))


@bp.get("/orders/<int:order_id>")
@accounts.login_required
def order(order_id: int) -> Page:
    account_id = accounts.current_account_id()
    assert account_id is not None
    found = order_of(current_shop().engine, account_id, order_id)
    if found is None:
        abort(404, f"You have no order {order_id}.")
    return render_template("order.html", order=found)


# ---- accounts --------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Page:
    shop = current_shop()
    target = accounts.safe_next(request.values.get("next"))
    problem = None
    if request.method == "POST":
        account_id = request.form.get("account", "").strip()
        found = accounts.authenticate(shop.engine, account_id,
                                      request.form.get("password", ""))
        if found is not None:
            merge_into_account(shop.engine, found.id)
            session[accounts.SESSION_KEY] = found.id
            session.pop(FIELD, None)  # a new form token for the logged-in session
            flash(f"Welcome back, {found.name}.", "success")
            return redirect(target)
        problem = "Unknown account or wrong password."
    html = render_template("login.html", problem=problem, next=target,
                           demo=accounts.demo_accounts(shop.engine))
    return (html, 401) if problem else html


@bp.post("/logout")
def logout() -> Page:
    session.pop(accounts.SESSION_KEY, None)
    flash("You are logged out.", "info")
    return redirect(url_for("shop.home"))
