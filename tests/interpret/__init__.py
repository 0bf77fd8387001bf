"""Tests of builder.interpret."""
