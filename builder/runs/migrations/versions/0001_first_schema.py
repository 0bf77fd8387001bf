"""The run database as LayerLab made it before migrations: ``runs`` and ``metrics``. Also brings a database of
an older release up to it (the columns added since the first release: owner, tags, control, queued_at,
graph_hash, class_id), which the store used to add by hand when it opened one.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ADDED = {"owner": lambda: sa.Column("owner", sa.Text, server_default="local"),
          "tags": lambda: sa.Column("tags", sa.Text), "control": lambda: sa.Column("control", sa.Text),
          "queued_at": lambda: sa.Column("queued_at", sa.Float(precision=53)),
          "graph_hash": lambda: sa.Column("graph_hash", sa.Text), "class_id": lambda: sa.Column("class_id", sa.Text)}


def upgrade() -> None:
    have = sa.inspect(op.get_bind())
    if not have.has_table("runs"):
        op.create_table(
            "runs", sa.Column("id", sa.Text, primary_key=True), sa.Column("name", sa.Text),
            sa.Column("status", sa.Text, nullable=False),
            *(sa.Column(c, sa.Text) for c in ("created_at", "started_at", "updated_at", "finished_at")),
            sa.Column("pid", sa.Integer), sa.Column("host", sa.Text),
            *(sa.Column(c, sa.Text) for c in ("project", "dataset_name", "dataset_options", "dataset_info", "config",
                                              "final_metrics", "test_metrics", "message", "parent_id")),
            sa.Column("epochs_done", sa.Integer, server_default="0"), sa.Column("environment", sa.Text),
            *(make() for make in _ADDED.values()))
    else:
        cols = {c["name"] for c in have.get_columns("runs")}
        for name, make in _ADDED.items():
            if name not in cols:
                op.add_column("runs", make())
    if not have.has_table("metrics"):
        op.create_table("metrics", sa.Column("run_id", sa.Text, nullable=False),
                        sa.Column("kind", sa.Text, nullable=False), sa.Column("step", sa.Integer),
                        sa.Column("epoch", sa.Integer), sa.Column("data", sa.Text, nullable=False))
    if "metrics_by_run" not in {i["name"] for i in have.get_indexes("metrics")}:
        op.create_index("metrics_by_run", "metrics", ["run_id", "kind", "step"])


def downgrade() -> None:
    op.drop_table("metrics")
    op.drop_table("runs")
