"""Data tests keep the decoded-image cache (builder.data.cache) in their own temporary workspace."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LAYERLAB_WORKSPACE", str(tmp_path_factory.mktemp("ws")))
