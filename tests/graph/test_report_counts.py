"""A count reads the same in Python's tables and on the canvas: builder.graph.report.human_count and
frontend/src/graph.js formatCount follow one rule (a node read "4.64k params" beside "4.6k" in the layer table)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.graph.report import human_bytes, human_count

ROOT = Path(__file__).resolve().parents[2]
CASES = json.loads((ROOT / "frontend" / "src" / "counts.cases.json").read_text())["cases"]


@pytest.mark.parametrize(("n", "text"), CASES)
def test_the_shared_table(n, text):
    assert human_count(n) == text  # frontend/src/counts.test.js checks formatCount on the same table


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(-(10**13), 10**13) | st.integers(990, 1_000_100) | st.integers(999_000, 1_000_500_000),
                min_size=50, max_size=50))
def test_python_and_the_canvas_write_any_count_alike(counts):
    node = shutil.which("node")
    assert node, "node runs the canvas's tests (make test installs it with the frontend)"
    script = ("import {formatCount} from './frontend/src/graph.js';"
              f"console.log(JSON.stringify({json.dumps(counts)}.map(formatCount)))")
    out = subprocess.run([node, "--input-type=module", "-e", script], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert json.loads(out) == [human_count(n) for n in counts]


@given(st.integers(0, 1024 ** 6 - 1) | st.integers(1_048_000, 1_048_576) | st.integers(1023 * 1024 ** 3, 1024 ** 4))
def test_a_size_never_reads_1024_of_a_unit(n):
    """A size rounds to the next unit as a count does: 1,048,575 bytes read '1024.0 KB', 3 PB '3072.0 TB'."""
    value, unit = human_bytes(n).split()
    assert float(value) < 1024 and unit in ("B", "KB", "MB", "GB", "TB", "PB", "EB")
    assert abs(float(value) * 1024 ** ("B", "KB", "MB", "GB", "TB", "PB", "EB").index(unit) - n) <= 0.05 * n + 1
