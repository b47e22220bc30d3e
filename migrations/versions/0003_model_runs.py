"""model runs: immutable, versioned training runs; artifacts belong to a run

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import recsdk.storage.models

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'model_runs',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('config_hash', sa.String(length=64), nullable=False),
        sa.Column('data_fingerprint', sa.String(length=64), nullable=True),
        sa.Column('events_through', sa.BigInteger(), nullable=True),
        sa.Column('plugins', sa.JSON(), nullable=False),
        sa.Column('stats', sa.JSON(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', recsdk.storage.models.UTCDateTime(timezone=True),
                  nullable=False),
        sa.Column('finished_at', recsdk.storage.models.UTCDateTime(timezone=True),
                  nullable=True),
        sa.Column('activated_at', recsdk.storage.models.UTCDateTime(timezone=True),
                  nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_model_runs')),
    )
    with op.batch_alter_table('model_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_runs_activated_at'), ['activated_at'],
                              unique=False)
    # artifacts of earlier versions belong to no run: they are not loadable any more
    op.execute("DELETE FROM model_artifacts")
    with op.batch_alter_table('model_artifacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('run_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('path', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('size', sa.BigInteger(), nullable=True))
        batch_op.alter_column('data', existing_type=sa.LargeBinary(), nullable=True)
        batch_op.create_index(batch_op.f('ix_model_artifacts_run_id'), ['run_id'],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_model_artifacts_run_id_model_runs'),
                                    'model_runs', ['run_id'], ['id'], ondelete='CASCADE')


def downgrade() -> None:
    op.execute("DELETE FROM model_artifacts")
    with op.batch_alter_table('model_artifacts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_model_artifacts_run_id_model_runs'),
                                 type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_model_artifacts_run_id'))
        batch_op.alter_column('data', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column('size')
        batch_op.drop_column('sha256')
        batch_op.drop_column('path')
        batch_op.drop_column('run_id')
    with op.batch_alter_table('model_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_runs_activated_at'))
    op.drop_table('model_runs')
