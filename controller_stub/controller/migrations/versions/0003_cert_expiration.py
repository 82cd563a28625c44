"""amphora server certificate expiry (housekeeping rotates before it)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('amphora') as batch:
        batch.add_column(sa.Column('cert_expiration', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('amphora') as batch:
        batch.drop_column('cert_expiration')
