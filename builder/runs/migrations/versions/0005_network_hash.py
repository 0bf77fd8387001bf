"""``runs.graph_hash`` computed again, the one way the same network is now recognised
(:func:`builder.graph.edit.graph_hash`): an edge's port written or not where it is the one an edge without it means,
a parameter left out or set to its default, is the same network. Runs stored before kept a hash of the spelling:
a run started from a template as loaded (no ports) was not the canvas's run once the canvas named the ports, so the
store matched two hashes per graph; runs of a workspace made before the column existed had none and are now
matched too. Only the hash changes; a run whose stored project cannot be read keeps its own.

Revision ID: 0005
Revises: 0004
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_RUNS = sa.table("runs", sa.column("id", sa.Text), sa.column("project", sa.Text), sa.column("graph_hash", sa.Text))


def upgrade() -> None:
    from builder.graph.edit import graph_hash  # lazy: heavy (the layer registry imports torch)

    _rehash(graph_hash)


def downgrade() -> None:
    _rehash(_spelled_hash)


def _rehash(hash_of) -> None:  # noqa: ANN001
    c = op.get_bind()
    ids = c.execute(sa.select(_RUNS.c.id)).scalars().all()
    for start in range(0, len(ids), 200):  # a few projects at a time in memory (each may be megabytes)
        chunk = ids[start:start + 200]
        for run_id, project in c.execute(sa.select(_RUNS.c.id, _RUNS.c.project).where(_RUNS.c.id.in_(chunk))):
            try:
                new = hash_of(json.loads(project or "null")["graph"])
            except (ValueError, TypeError, KeyError, AttributeError):  # unreadable: the run keeps what it has
                continue
            c.execute(_RUNS.update().where(_RUNS.c.id == run_id).values(graph_hash=new))


def _spelled_hash(graph: dict) -> str:
    """The hash before this revision (the spelling counted), as LayerLab up to 0004 computed it."""
    nodes = sorted((str(n.get("id")), str(n.get("type")), json.dumps(n.get("params") or {}, sort_keys=True,
                                                                       default=str))
                   for n in graph.get("nodes") or [])
    edges = sorted(json.dumps({"source": e.get("source"), "target": e.get("target"), "source_port": e.get("source_port"),
                               "target_port": e.get("target_port")}, sort_keys=True, default=str)  # as model_dump()
                   for e in graph.get("edges") or [])
    return hashlib.sha256(json.dumps([nodes, edges]).encode()).hexdigest()[:16]
