"""experiment records: what each experiment's assignment was when it last served

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 20:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import recsdk.storage.models

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'experiment_records',
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('record', sa.JSON(), nullable=False),
        sa.Column('first_seen_at', recsdk.storage.models.UTCDateTime(timezone=True),
                  nullable=False),
        sa.Column('recorded_at', recsdk.storage.models.UTCDateTime(timezone=True),
                  nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_experiment_records')),
    )


def downgrade() -> None:
    op.drop_table('experiment_records')
