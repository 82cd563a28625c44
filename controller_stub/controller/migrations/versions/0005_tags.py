"""tags on load balancers and everything on them

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_TABLES = ('load_balancer', 'listener', 'pool', 'member', 'health_monitor', 'l7policy',
           'l7rule')


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column('tags', sa.JSON(), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column('tags')
