"""A job's heartbeat and its placement on a cluster: ``runs.beat_at`` (when the job, or the server that queued it,
last said it is alive; a live run of another host whose beat is older than
:data:`builder.training.run_status.STALE_S` is interrupted by the next reader) and ``runs.placed_at`` (when a
cluster scheduler took the job: servers sharing the store count the cluster's jobs from it).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("beat_at", sa.Float(precision=53)))
    op.add_column("runs", sa.Column("placed_at", sa.Float(precision=53)))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("placed_at")
        batch.drop_column("beat_at")
