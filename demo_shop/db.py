"""The shop's own tables, next to recsdk's in the same database.

A shop that adopts recsdk keeps its own schema: products, accounts, carts and orders
are the shop's, and recsdk gets the catalogue and the behaviour through its ingestion
API. The tables live in their own ``MetaData`` with a ``shop_`` prefix, so they never
meet recsdk's migrations (``items``, ``users``, ``categories``...), and are created at
start-up with ``create_all`` (a schema this small needs no migrations yet: columns added
since, all nullable, are added to an older database's tables by :func:`create_tables`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
)

#: The length of ids, as recsdk's (``recsdk.rules.ID_LENGTH``) so every id fits both.
ID = 255

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


def utcnow() -> datetime:
    return datetime.now(UTC)


categories = Table(
    "shop_categories", metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", Text, nullable=False),
    Column("parent_id", String(ID), ForeignKey("shop_categories.id"), index=True),
)

products = Table(
    "shop_products", metadata,
    Column("id", String(ID), primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("category_id", String(ID), ForeignKey("shop_categories.id"), index=True),
    Column("price", Float, nullable=False),
    Column("original_price", Float),  # set when the product is discounted
    Column("stock", Integer, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("attributes", JSON, nullable=False, default=dict),
    #: which catalogue it came from: "synthetic" or "clothing"
    Column("source", String(32), nullable=False),
)

accounts = Table(
    "shop_accounts", metadata,
    Column("id", String(ID), primary_key=True),  # also the user_id recsdk knows
    Column("name", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
)

#: Accounts that may open the admin dashboard (``/admin``): a table of its own rather
#: than a column of ``shop_accounts``, so that ``create_all`` adds it to a shop's
#: database made before the dashboard existed.
admins = Table(
    "shop_admins", metadata,
    Column("account_id", String(ID), ForeignKey("shop_accounts.id"), primary_key=True),
)

cart_lines = Table(
    "shop_cart_lines", metadata,
    Column("account_id", String(ID), ForeignKey("shop_accounts.id"), primary_key=True),
    Column("item_id", String(ID), ForeignKey("shop_products.id"), primary_key=True),
    Column("quantity", Integer, nullable=False),
    # the recommended list the product was reached from, and its place in it
    # (demo_shop.attribution); NULL when the visitor found it by themselves
    Column("request_id", String(64)),
    Column("position", Integer),
)

orders = Table(
    "shop_orders", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(ID), ForeignKey("shop_accounts.id"), nullable=False,
           index=True),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("total", Float, nullable=False),
)

order_lines = Table(
    "shop_order_lines", metadata,
    Column("order_id", Integer, ForeignKey("shop_orders.id"), primary_key=True),
    Column("item_id", String(ID), ForeignKey("shop_products.id"), primary_key=True),
    Column("title", Text, nullable=False),  # as sold, whatever the product becomes
    Column("unit_price", Float, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("request_id", String(64)),  # the list that sold it, as on the cart line
    Column("position", Integer),
)

#: Columns added after the first release of these tables (nullable, so an older
#: database gets them with ALTER TABLE ... ADD COLUMN).
ADDED_COLUMNS = {"shop_cart_lines": ("request_id", "position"),
                 "shop_order_lines": ("request_id", "position")}


def create_tables(engine: Engine) -> None:
    """Create the shop's tables that are missing, and add the columns an older
    database's tables lack (recsdk's tables are left alone)."""
    metadata.create_all(engine)
    found = inspect(engine)
    with engine.begin() as conn:
        for name, columns in ADDED_COLUMNS.items():
            have = {c["name"] for c in found.get_columns(name)}
            for column in columns:
                if column not in have:
                    spec = metadata.tables[name].c[column]
                    kind = spec.type.compile(dialect=engine.dialect)
                    conn.exec_driver_sql(f'ALTER TABLE {name} ADD COLUMN "{column}" {kind}')
