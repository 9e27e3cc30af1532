"""web console users: username, argon2 hash, role, agent link

Revision ID: 0003_web_users
Revises: 0002_acd
Create Date: 2026-11-22 08:40:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import infra.db

# revision identifiers, used by Alembic.
revision: str = '0003_web_users'
down_revision: Union[str, Sequence[str], None] = '0002_acd'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('agent_id', sa.String(length=64), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', infra.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', infra.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('agent', 'supervisor', 'manager', 'admin')", name=op.f('ck_users_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('agent_id', name=op.f('uq_users_agent_id')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('users')
