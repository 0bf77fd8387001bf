"""Alembic migrations of the run database (builder.runs.db): one file per schema revision in ``versions/``."""
