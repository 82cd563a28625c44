"""per-project quotas

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_KINDS = ('load_balancer', 'listener', 'pool', 'health_monitor', 'member', 'l7policy',
          'l7rule')


def upgrade() -> None:
    op.create_table(
        'quota',
        sa.Column('project_id', sa.String(length=36), nullable=False),
        *(sa.Column(kind, sa.Integer(), nullable=True) for kind in _KINDS),
        sa.PrimaryKeyConstraint('project_id'))


def downgrade() -> None:
    op.drop_table('quota')
