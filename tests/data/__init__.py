"""Tests of builder.data."""
