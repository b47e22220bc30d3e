"""Compare the live database with recsdk's models and say what differs, in words.

``recsdk db check`` runs this after a deploy or a hand edit: alembic's autogenerate
comparison finds the differences, and each is described from the models' side
("missing from the database", "not in the models") so the fix is obvious.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from recsdk.storage import partitions
from recsdk.storage.models import Base


def schema_differences(engine: Engine, foreign_tables: bool = False) -> list[Any]:
    """Alembic's raw diff between ``engine``'s database and the models (types included).

    recsdk often shares the shop's own database, so tables the models do not define
    are the shop's business and left out unless ``foreign_tables`` is true.
    """
    layout = partitions.include_object_for(engine.dialect.name)

    def include(obj: Any, name: str | None, type_: str, reflected: bool,
                compare_to: Any) -> bool:
        if not layout(obj, name, type_, reflected, compare_to):
            return False  # PostgreSQL's event partitions and event_keys are recsdk's own
        is_foreign_table = type_ == "table" and reflected and compare_to is None
        return foreign_tables or not is_foreign_table

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include})
        return compare_metadata(context, Base.metadata)


def describe_differences(diffs: list[Any]) -> list[str]:
    """One readable line per difference, nested column changes flattened."""
    lines: list[str] = []
    for diff in diffs:
        if isinstance(diff, list):
            lines += describe_differences(diff)
        else:
            lines.append(_describe(diff))
    return lines


_MISSING = "in the models, missing from the database"
_EXTRA = "in the database, not in the models"


def _describe(diff: tuple[Any, ...]) -> str:
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        return f"table {diff[1].name}: {_MISSING if kind == 'add_table' else _EXTRA}"
    if kind in ("add_column", "remove_column"):
        _, _schema, table, column = diff
        where = _MISSING if kind == "add_column" else _EXTRA
        return f"column {table}.{column.name} ({column.type}): {where}"
    if kind in ("add_index", "remove_index"):
        index = diff[1]
        columns = ", ".join(c.name for c in index.columns) or str(index.expressions)
        where = _MISSING if kind == "add_index" else _EXTRA
        return f"index {index.name} on {index.table.name}({columns}): {where}"
    if kind in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        constraint = diff[1]
        what = "foreign key" if kind.endswith("_fk") else "constraint"
        where = _MISSING if kind.startswith("add_") else _EXTRA
        return f"{what} {constraint.name} on {constraint.table.name}: {where}"
    if kind.startswith("modify_"):
        _, _schema, table, column, _existing, database_value, model_value = diff
        aspect = kind.removeprefix("modify_")
        return (f"column {table}.{column}: {aspect} is {database_value} in the database, "
                f"{model_value} in the models")
    return f"{kind}: {', '.join(map(str, diff[1:]))}"
