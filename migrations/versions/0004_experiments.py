"""experiments: which experiment a served list belongs to, and whether QA forced it

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 20:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('recommendation_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('experiment', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('forced', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index('ix_recommendation_requests_experiment_created_at',
                              ['experiment', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('recommendation_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_recommendation_requests_experiment_created_at')
        batch_op.drop_column('forced')
        batch_op.drop_column('experiment')
