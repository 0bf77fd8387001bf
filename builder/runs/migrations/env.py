"""Alembic's entry: runs the migrations on the connection :func:`builder.runs.db.upgrade` hands over (online
only; LayerLab never writes SQL scripts for a database it cannot reach)."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` run by hand: use the URL LayerLab would
    import os

    from builder.runs import db

    with db.engine(db.database_url(os.environ.get("LAYERLAB_WORKSPACE", "."))).connect() as c, db.write(c, "migrate"):
        context.configure(connection=c, target_metadata=None)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
