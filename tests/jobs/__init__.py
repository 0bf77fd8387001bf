"""Tests of builder.jobs."""
