"""experiment allocations and assignments: Thompson-sampling shares per epoch, and each
unit's first arm (it keeps it when later epochs change the shares)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import recsdk.storage.models

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'experiment_allocations',
        sa.Column('experiment', sa.String(length=128), nullable=False),
        sa.Column('epoch_start', recsdk.storage.models.UTCDateTime(timezone=True),
                  nullable=False),
        sa.Column('shares', sa.JSON(), nullable=False),
        sa.Column('prob_best', sa.JSON(), nullable=True),
        sa.Column('counts', sa.JSON(), nullable=False),
        sa.Column('computed_at', recsdk.storage.models.UTCDateTime(timezone=True),
                  nullable=False),
        sa.PrimaryKeyConstraint('experiment', 'epoch_start',
                                name=op.f('pk_experiment_allocations')),
    )
    op.create_table(
        'experiment_assignments',
        sa.Column('experiment', sa.String(length=128), nullable=False),
        sa.Column('unit', sa.String(length=263), nullable=False),
        sa.Column('variant', sa.String(length=128), nullable=False),
        sa.Column('assigned_at', recsdk.storage.models.UTCDateTime(timezone=True),
                  nullable=False),
        sa.PrimaryKeyConstraint('experiment', 'unit', name=op.f('pk_experiment_assignments')),
    )


def downgrade() -> None:
    op.drop_table('experiment_assignments')
    op.drop_table('experiment_allocations')
