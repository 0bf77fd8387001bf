import json
import subprocess
import sys

import pytest

from builder.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "builder", *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture
def ex_file(tmp_path, example_project):
    p = tmp_path / "ex.json"
    p.write_text(json.dumps(example_project))
    return p


def test_validate_ok(ex_file):
    r = run("validate", ex_file)
    assert r.returncode == 0 and r.stdout.startswith("ok:")


def test_validate_problems(tmp_path, example_project):
    example_project["graph"]["nodes"][1]["params"]["out_channels"] = 0
    example_project["graph"]["nodes"][5]["type"] = "Linaer"
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(example_project))
    r = run("validate", p)
    assert r.returncode == 1
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("node c1: `out_channels` must be ≥ 1")
    assert any(line.startswith("node fc: unknown layer type") and "Linear" in line for line in lines)
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("content", ["{", "", "[]", '{"format": "layerlab", "version": 7}', "\x00\x01"])
def test_malformed_files_exit_2_with_one_line(tmp_path, content, capsys):
    p = tmp_path / "x.json"
    p.write_text(content)
    for cmd in ("validate", "summary", "export"):
        assert main([cmd, str(p)]) == 2, (cmd, content)
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err


def test_malformed_file_in_a_real_process(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"format": "layerlab", "graph": {"nodes": [')
    r = run("summary", p)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_summary(ex_file, capsys):
    assert main(["summary", str(ex_file)]) == 0
    out = capsys.readouterr().out
    assert "c1" in out and "(B, 16, 8, 8)" in out and "10,410" in out
    assert main(["summary", str(ex_file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_params"] == 10410
    assert [n["id"] for n in data["nodes"]] == ["x", "c1", "r1", "sum", "f", "fc"]
    assert data["nodes"][1] == {"id": "c1", "type": "Conv2d", "status": "ok", "shape": "(B, 16, 8, 8)",
                                "output_shape": [16, 8, 8], "params": 160, "inferred": {"in_channels": 1}}


def test_export_py_and_safetensors(ex_file, tmp_path):
    out = tmp_path / "model.py"
    assert main(["export", str(ex_file), "--format", "py", "-o", str(out)]) == 0
    r = subprocess.run([sys.executable, str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "(2, 10)" in r.stdout
    w = tmp_path / "w.safetensors"
    assert main(["export", str(ex_file), "--format", "safetensors", "-o", str(w)]) == 0
    from safetensors.torch import load_file
    assert "fc.weight" in load_file(str(w))


def test_templates(tmp_path, capsys):
    assert main(["templates"]) == 0
    out = capsys.readouterr().out
    for name in ("mlp", "cnn", "resnet", "lstm", "transformer", "autoencoder"):
        assert name in out
    target = tmp_path / "cnn.json"
    assert main(["templates", "cnn", "-o", str(target)]) == 0
    assert main(["validate", str(target)]) == 0
    assert main(["templates", "nope"]) == 2


def test_datasets_listed(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "iris", "wine", "breast_cancer", "diabetes", "moons", "circles", "spirals", "xor",
                 "blobs", "sequence"):
        assert name in out
