"""recordings: recording metadata, QA scores, survey answers

Revision ID: 0004_recordings
Revises: 0003_web_users
Create Date: 2026-11-22 08:45:00

"""
from typing import Any, Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

import infra.db

# revision identifiers, used by Alembic.
revision: str = '0004_recordings'
down_revision: Union[str, Sequence[str], None] = '0003_web_users'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('recordings',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('agent_id', sa.String(length=64), nullable=True),
    sa.Column('campaign_id', sa.BigInteger(), nullable=True),
    sa.Column('campaign', sa.String(length=100), nullable=True),
    sa.Column('queue', sa.String(length=64), nullable=True),
    sa.Column('started_at', infra.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', infra.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('gaps', _json(), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('deleted_at', infra.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recordings'))
    )
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.create_index('ix_recordings_agent_started', ['agent_id', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_recordings_call_id'), ['call_id'], unique=False)
        batch_op.create_index('ix_recordings_campaign_started', ['campaign', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_recordings_started_at'), ['started_at'], unique=False)

    op.create_table('survey_answers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('agent_id', sa.String(length=64), nullable=True),
    sa.Column('campaign_id', sa.BigInteger(), nullable=True),
    sa.Column('campaign', sa.String(length=100), nullable=True),
    sa.Column('queue', sa.String(length=64), nullable=True),
    sa.Column('answer', sa.SmallInteger(), nullable=False),
    sa.Column('created_at', infra.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('answer IN (1, 2, 3)', name=op.f('ck_survey_answers_answer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_answers'))
    )
    with op.batch_alter_table('survey_answers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_answers_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_answers_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_answers_campaign'), ['campaign'], unique=False)

    op.create_table('qa_scores',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('agent_id', sa.String(length=64), nullable=True),
    sa.Column('campaign', sa.String(length=100), nullable=True),
    sa.Column('form', sa.String(length=100), nullable=False),
    sa.Column('scorer', sa.String(length=64), nullable=False),
    sa.Column('scores', _json(), nullable=False),
    sa.Column('total', sa.Float(), nullable=False),
    sa.Column('comments', sa.Text(), nullable=True),
    sa.Column('created_at', infra.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], name=op.f('fk_qa_scores_recording_id_recordings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_scores'))
    )
    with op.batch_alter_table('qa_scores', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qa_scores_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_qa_scores_recording_id'), ['recording_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('qa_scores')
    op.drop_table('survey_answers')
    op.drop_table('recordings')
