"""A ``documents`` table: JSON documents kept with the runs, so servers sharing a database share them (classes:
:mod:`builder.runs.classes`), and an index for the job queue (``status``, ``queued_at``).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("documents", sa.Column("kind", sa.Text, primary_key=True), sa.Column("id", sa.Text, primary_key=True),
                    sa.Column("data", sa.Text, nullable=False), sa.Column("updated_at", sa.Float(precision=53)))
    op.create_index("runs_by_status", "runs", ["status", "queued_at"])


def downgrade() -> None:
    op.drop_index("runs_by_status", "runs")
    op.drop_table("documents")
