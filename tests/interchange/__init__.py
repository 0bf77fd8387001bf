"""Tests of builder.interchange."""
