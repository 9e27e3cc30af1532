"""lists: the owner and heartbeat of a running import

Revision ID: 0006_import_owner
Revises: 0005_runner
Create Date: 2026-11-30 09:00:00

An import marks its list with its owner id (host:pid:random) and refreshes heartbeat_at
with every committed batch, so a second import into the campaign can tell a running
import (refuse) from one whose process died (discard and start over).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import infra.db

# revision identifiers, used by Alembic.
revision: str = '0006_import_owner'
down_revision: Union[str, Sequence[str], None] = '0005_runner'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('lists', schema=None) as batch_op:
        batch_op.add_column(sa.Column('import_owner', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', infra.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('lists', schema=None) as batch_op:
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('import_owner')
