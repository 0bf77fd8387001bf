"""Tests of builder.runs."""
