"""Curve points get an explicit ``id`` (SQLite's hidden rowid, which PostgreSQL lacks): the order points were
logged in and the cursor of incremental reads (``RunStore.metrics_after``). An SQLite table is rebuilt with each
point's id equal to its old rowid, so a cursor a page held stays valid.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE TABLE metrics_new (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, kind TEXT NOT NULL, "
                   "step INTEGER, epoch INTEGER, data TEXT NOT NULL)")
        op.execute("INSERT INTO metrics_new (id, run_id, kind, step, epoch, data) "
                   "SELECT rowid, run_id, kind, step, epoch, data FROM metrics")
        op.execute("DROP TABLE metrics")
        op.execute("ALTER TABLE metrics_new RENAME TO metrics")
        op.create_index("metrics_by_run", "metrics", ["run_id", "kind", "step"])
    else:
        op.add_column("metrics", sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True))


def downgrade() -> None:
    op.drop_column("metrics", "id")
