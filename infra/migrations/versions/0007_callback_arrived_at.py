"""acd: a callback request's place in line (arrived_at), kept across restarts

Revision ID: 0007_callback_arrived_at
Revises: 0006_import_owner
Create Date: 2026-12-01 12:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import infra.db

# revision identifiers, used by Alembic.
revision: str = '0007_callback_arrived_at'
down_revision: Union[str, Sequence[str], None] = '0006_import_owner'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('callback_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('arrived_at', infra.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('callback_requests', schema=None) as batch_op:
        batch_op.drop_column('arrived_at')
