"""runner: why a lead is (not) called next, and customer-requested callbacks

Revision ID: 0005_runner
Revises: 0004_recordings
Create Date: 2026-11-23 09:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '0005_runner'
down_revision: Union[str, Sequence[str], None] = '0004_recordings'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_reason', sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column('callback_customer_requested', sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_column('callback_customer_requested')
        batch_op.drop_column('next_attempt_reason')
