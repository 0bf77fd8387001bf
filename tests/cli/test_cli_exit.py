"""How the ``layerlab`` process ends (builder.cli.common.finish_process): with the command's exit code, its
output flushed and the exit handlers run, without the interpreter's teardown; the ordinary exit when another
non-daemon thread is still alive. ``main()`` itself returns to an in-process caller."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120,
                          cwd=ROOT)


RUN = ("import atexit, sys\nfrom builder.cli.main import run\n"
       "atexit.register(lambda: print('exit handler ran', file=sys.stderr))\n"
       "sys.argv = ['layerlab', *sys.argv[1:]]\n{extra}run()\nprint('not reached')\n")


def test_the_process_ends_with_the_command_code_its_output_and_its_exit_handlers(tmp_path):
    ok = _python(RUN.format(extra=""), "datasets")
    assert ok.returncode == 0 and "digits" in ok.stdout and "not reached" not in ok.stdout
    assert ok.stderr.strip().endswith("exit handler ran")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    err = _python(RUN.format(extra=""), "validate", str(bad))
    assert err.returncode == 2 and err.stderr.count("exit handler ran") == 1 and "Traceback" not in err.stderr


def test_a_closed_pipe_ends_quietly():
    head = subprocess.run(f"{sys.executable} -m builder layers | head -1", shell=True, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=120)
    assert head.stdout.count("\n") == 1 and "Traceback" not in head.stderr


def test_another_live_thread_gets_the_ordinary_exit():
    extra = ("import threading, time\n"
             "threading.Thread(target=lambda: (time.sleep(0.5), print('thread finished', flush=True))).start()\n")
    r = _python(RUN.format(extra=extra), "datasets")
    assert r.returncode == 0 and "thread finished" in r.stdout and "exit handler ran" in r.stderr


def test_an_unexpected_error_is_one_line_and_exit_70_and_its_traceback_is_asked_for(monkeypatch, capsys):
    """``layerlab arch vit_tiny --input 1,2`` printed an IndexError's traceback (server paths included), as did any
    error that was not LayerLab's own (an ONNX file whose numbers do not fit, ``layerlab import``). A bug is one line
    with exit 70; ``LAYERLAB_DEBUG=1`` prints the traceback."""
    import importlib

    import pytest

    cli = importlib.import_module("builder.cli.main")  # the module (builder.cli's `main` is the function)

    assert cli.main(["arch", "vit_tiny", "--input", "1,2"]) == 2
    assert "three sizes" in capsys.readouterr().err

    def broken(args):
        raise IndexError(f"tuple index out of range in {ROOT / 'builder'}")

    monkeypatch.setattr(cli, "cmd_layers", broken)
    monkeypatch.delenv("LAYERLAB_DEBUG", raising=False)
    assert cli.main(["layers"]) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "IndexError: tuple index out of range" in err
    assert "LAYERLAB_DEBUG=1" in err
    monkeypatch.setenv("LAYERLAB_DEBUG", "1")
    with pytest.raises(IndexError):
        cli.main(["layers"])
