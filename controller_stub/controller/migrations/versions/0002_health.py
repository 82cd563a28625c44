"""amphora health and listener statistics

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'amphora_health',
        sa.Column('amphora_id', sa.String(length=36), nullable=False),
        sa.Column('last_update', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('amphora_id'))
    op.create_index('ix_amphora_health_last_update', 'amphora_health', ['last_update'])
    op.create_table(
        'listener_statistics',
        sa.Column('listener_id', sa.String(length=36), nullable=False),
        sa.Column('amphora_id', sa.String(length=36), nullable=False),
        sa.Column('bytes_in', sa.BigInteger(), nullable=False),
        sa.Column('bytes_out', sa.BigInteger(), nullable=False),
        sa.Column('active_connections', sa.Integer(), nullable=False),
        sa.Column('total_connections', sa.BigInteger(), nullable=False),
        sa.Column('request_errors', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('listener_id', 'amphora_id'))


def downgrade() -> None:
    op.drop_table('listener_statistics')
    op.drop_index('ix_amphora_health_last_update', 'amphora_health')
    op.drop_table('amphora_health')
