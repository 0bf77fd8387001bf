"""Tests of builder.graph."""
