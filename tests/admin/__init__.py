"""Tests of builder.admin."""
