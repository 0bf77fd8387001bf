"""The interchange tests' shared setup."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _exporter_tables_kept():
    """Files these tests write with ``torch.onnx.export`` itself, as users' files are made, share the exporter's
    registry and decomposition table with LayerLab's exports (``onnx_export.keep_torchlib``): built once per
    test process, not once per file."""
    from builder.interchange.onnx_export import keep_torchlib

    keep_torchlib()
