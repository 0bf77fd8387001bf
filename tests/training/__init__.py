"""Tests of builder.training."""
