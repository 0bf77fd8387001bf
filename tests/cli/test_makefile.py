"""The Makefile's first run: ``make app`` installs for minutes before the app starts, and says what it is doing."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_first_install_says_what_it_is_doing(tmp_path):
    """The install steps run for real against a stand-in interpreter (it records its arguments): each step is
    announced in a short line, in order, and pip's command lines are not what the person reads."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'calls'}\n", encoding="utf-8")
    python.chmod(0o755)
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "install", f"VENV={venv}"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    steps = [ln for ln in lines if ln.startswith("==> ")]
    assert [s.split("]")[0] for s in steps if s.startswith("==> [")] == ["==> [1/3", "==> [2/3", "==> [3/3"]
    assert "minutes" in steps[0] and steps[-1].startswith("==> Installed")
    assert not [ln for ln in lines if "pip install" in ln]  # the person reads the steps, not pip's commands
    calls = (tmp_path / "calls").read_text(encoding="utf-8").splitlines()
    assert calls[0].endswith("constraints.txt torch") and "-e .[dev," in calls[1]  # torch first, then the rest
    assert (venv / ".layerlab-installed").is_file()
