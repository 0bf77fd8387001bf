"""Tests of builder.cli."""
