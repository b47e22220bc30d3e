"""bandit state shared by serving processes: statistics cells (atomic increments) and
pending pulls (a shown item's context until its reward may arrive)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import recsdk.storage.models

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'bandit_statistics',
        sa.Column('namespace', sa.String(length=128), nullable=False),
        sa.Column('cell', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('namespace', 'cell', name=op.f('pk_bandit_statistics')),
    )
    op.create_table(
        'bandit_pulls',
        sa.Column('namespace', sa.String(length=128), nullable=False),
        sa.Column('request_id', sa.String(length=64), nullable=False),
        sa.Column('item_id', sa.String(length=255), nullable=False),
        sa.Column('context', sa.LargeBinary(), nullable=False),
        sa.Column('expires_at', recsdk.storage.models.UTCDateTime(timezone=True),
                  nullable=False),
        sa.PrimaryKeyConstraint('namespace', 'request_id', 'item_id',
                                name=op.f('pk_bandit_pulls')),
    )
    op.create_index(op.f('ix_bandit_pulls_expires_at'), 'bandit_pulls', ['expires_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_bandit_pulls_expires_at'), table_name='bandit_pulls')
    op.drop_table('bandit_pulls')
    op.drop_table('bandit_statistics')
