"""impression propensities: the probability that a stochastic policy (a bandit) showed
the item at its position, logged for off-policy evaluation

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('impressions') as batch:
        batch.add_column(sa.Column('propensity', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('impressions') as batch:
        batch.drop_column('propensity')
