"""Tests of builder.search."""
