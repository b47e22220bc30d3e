"""PostgreSQL: events partitioned by month (RANGE on timestamp), idempotency keys in
event_keys; SQLite unchanged

Existing events move into monthly partitions (and their event_ids into event_keys)
inside the migration's transaction; see recsdk.storage.partitions.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 06:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

from recsdk.storage import partitions

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        partitions.to_partitioned(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        partitions.to_plain(bind)
