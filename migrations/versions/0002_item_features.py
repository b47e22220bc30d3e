"""item features: versioned, content-hashed feature vectors per item and block

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 13:29:50.910513
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import recsdk.storage.models

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'item_features',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('item_id', sa.String(length=255), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('version', sa.String(length=128), nullable=False),
        sa.Column('content_hash', sa.String(length=64), nullable=False),
        sa.Column('format', sa.String(length=16), nullable=False),
        sa.Column('dim', sa.Integer(), nullable=False),
        sa.Column('vector', sa.LargeBinary(), nullable=False),
        sa.Column('updated_at', recsdk.storage.models.UTCDateTime(timezone=True),
                  nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_item_features')),
        sa.UniqueConstraint('item_id', 'name', name=op.f('uq_item_features_item_id')),
    )
    with op.batch_alter_table('item_features', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_item_features_name'), ['name'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('item_features', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_item_features_name'))
    op.drop_table('item_features')
